// SPDX-License-Identifier: GPL-2.0
/*
 * Standard base64 (RFC 4648 §4, padded), the form etcd's JSON gateway uses
 * for keys and values. The decoder is strict: it refuses anything the
 * encoder would not produce (bad length, characters outside the alphabet,
 * whitespace, misplaced or missing padding, non-zero pad bits), so a
 * corrupted reply is an error with a reason instead of quietly wrong bytes.
 */
#ifndef NM_AGENT_BASE64_H
#define NM_AGENT_BASE64_H

#include <stddef.h>

/* Characters nm_b64_encode() writes for @n bytes, without the NUL. */
static inline size_t nm_b64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Upper bound of the bytes nm_b64_decode() writes for @n characters. */
static inline size_t nm_b64_decoded_max(size_t n)
{
	return n / 4 * 3;
}

/* Encode @n bytes of @src into @dst (nm_b64_encoded_len(n) + 1 bytes). */
void nm_b64_encode(const void *src, size_t n, char *dst);

/*
 * Decode @n characters of @src into @dst (nm_b64_decoded_max(n) bytes, may
 * be NULL when that is 0) and store the byte count in @out_len. Returns 0,
 * or -EINVAL with the position and reason in @err.
 */
int nm_b64_decode(const char *src, size_t n, void *dst, size_t *out_len,
		  char *err, size_t errlen);

#endif /* NM_AGENT_BASE64_H */
