// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/base64.h"

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void nm_b64_encode(const void *src, size_t n, char *dst)
{
	const uint8_t *s = src;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = s[i] << 16 | s[i + 1] << 8 | s[i + 2];

		*dst++ = b64_alphabet[v >> 18 & 63];
		*dst++ = b64_alphabet[v >> 12 & 63];
		*dst++ = b64_alphabet[v >> 6 & 63];
		*dst++ = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = s[i] << 16;

		*dst++ = b64_alphabet[v >> 18 & 63];
		*dst++ = b64_alphabet[v >> 12 & 63];
		*dst++ = '=';
		*dst++ = '=';
	} else if (n - i == 2) {
		uint32_t v = s[i] << 16 | s[i + 1] << 8;

		*dst++ = b64_alphabet[v >> 18 & 63];
		*dst++ = b64_alphabet[v >> 12 & 63];
		*dst++ = b64_alphabet[v >> 6 & 63];
		*dst++ = '=';
	}
	*dst = '\0';
}

/* 0..63 for an alphabet character, -1 otherwise. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int nm_b64_decode(const char *src, size_t n, void *dst, size_t *out_len,
		  char *err, size_t errlen)
{
	uint8_t *d = dst;
	size_t i, pad = 0, o = 0;

	if (n % 4) {
		snprintf(err, errlen,
			 "bad base64: length %zu is not a multiple of 4", n);
		return -EINVAL;
	}
	/* Padding may only be the last one or two characters. */
	if (n && src[n - 1] == '=')
		pad = (n >= 2 && src[n - 2] == '=') ? 2 : 1;

	for (i = 0; i < n; i += 4) {
		bool last = i + 4 == n;
		size_t j, valid = last ? 4 - pad : 4;
		uint32_t v = 0;

		for (j = 0; j < 4; j++) {
			unsigned char c = src[i + j];
			int x;

			if (j >= valid) {
				/* A pad position; '=' checked above. */
				continue;
			}
			x = b64_value(c);
			if (x < 0) {
				if (c == '=')
					snprintf(
						err, errlen,
						"bad base64: padding at offset %zu before the end",
						i + j);
				else if (c >= 0x21 && c < 0x7f)
					snprintf(
						err, errlen,
						"bad base64: character '%c' at offset %zu",
						c, i + j);
				else
					snprintf(
						err, errlen,
						"bad base64: byte 0x%02x at offset %zu",
						c, i + j);
				return -EINVAL;
			}
			v |= (uint32_t)x << (18 - 6 * j);
		}
		/* "QQ==" and "QR==" both decode to "A": only one is canonical. */
		if ((valid == 2 && (v & 0xffff)) ||
		    (valid == 3 && (v & 0xff))) {
			snprintf(
				err, errlen,
				"bad base64: non-zero padding bits at offset %zu",
				i + valid - 1);
			return -EINVAL;
		}
		d[o++] = v >> 16;
		if (valid > 2)
			d[o++] = v >> 8 & 0xff;
		if (valid > 3)
			d[o++] = v & 0xff;
	}
	*out_len = o;
	return 0;
}
