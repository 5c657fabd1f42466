// SPDX-License-Identifier: GPL-2.0
/* etcd gateway decoders on crafted replies: base64, numbers, JSON shapes. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agent/base64.h"
#include "agent/etcd.h"

static void test_b64_roundtrip(void **state)
{
	unsigned char in[256], out[256];
	char enc[400], err[128];
	size_t n, len;

	(void)state;
	for (n = 0; n < sizeof(in); n++)
		in[n] = (unsigned char)(n * 37 + 11);
	for (n = 0; n <= sizeof(in); n++) {
		nm_b64_encode(in, n, enc);
		assert_int_equal(strlen(enc), nm_b64_encoded_len(n));
		assert_int_equal(nm_b64_decode(enc, strlen(enc), out, &len, err,
					       sizeof(err)),
				 0);
		assert_int_equal(len, n);
		assert_memory_equal(in, out, n);
	}
}

static void test_b64_known(void **state)
{
	static const struct {
		const char *plain, *enc;
	} v[] = {
		{ "", "" },
		{ "f", "Zg==" },
		{ "fo", "Zm8=" },
		{ "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	char enc[32], err[128], out[32];
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		nm_b64_encode(v[i].plain, strlen(v[i].plain), enc);
		assert_string_equal(enc, v[i].enc);
		assert_int_equal(nm_b64_decode(v[i].enc, strlen(v[i].enc), out,
					       &len, err, sizeof(err)),
				 0);
		assert_int_equal(len, strlen(v[i].plain));
		assert_memory_equal(out, v[i].plain, len);
	}
	/* Binary: every byte value, including NUL and 0xff. */
	nm_b64_encode("\x00\xff\xfe", 3, enc);
	assert_string_equal(enc, "AP/+");
}

static void test_b64_rejects(void **state)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "Zg=", "not a multiple of 4" },
		{ "Zm9", "not a multiple of 4" },
		{ "Zg", "not a multiple of 4" },
		{ "Zm9v\n", "not a multiple of 4" },
		{ "Zm 9", "byte 0x20 at offset 2" },
		{ "Zm9v\nAAA", "byte 0x0a" },
		{ "Zm-v", "character '-'" },
		{ "Zm_v", "character '_'" },
		{ "Z===", "padding at offset 1" },
		{ "====", "padding at offset 0" },
		{ "Zg==Zg==", "padding at offset 2" },
		{ "Zm=v", "padding at offset 2" },
		{ "Zh==", "non-zero padding bits" },
		{ "Zm9=", "non-zero padding bits" },
		{ "Zm\x80v", "byte 0x80" },
	};
	char err[128], out[16];
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (nm_b64_decode(bad[i].in, strlen(bad[i].in), out, &len, err,
				  sizeof(err)) != -EINVAL)
			fail_msg("'%s' accepted", bad[i].in);
		if (!strstr(err, bad[i].why))
			fail_msg("'%s': '%s' lacks '%s'", bad[i].in, err,
				 bad[i].why);
	}
}

static void test_numbers(void **state)
{
	__s64 i;
	__u64 u;

	(void)state;
	assert_int_equal(nm_etcd_parse_u64("18446744073709551615", &u), 0);
	assert_true(u == UINT64_MAX);
	/* Above 2^53: a double would round this. */
	assert_int_equal(nm_etcd_parse_u64("7587875498146453001", &u), 0);
	assert_true(u == 7587875498146453001ull);
	assert_int_equal(nm_etcd_parse_i64("-9223372036854775808", &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(nm_etcd_parse_i64("0", &i), 0);
	assert_int_equal(i, 0);

	assert_int_not_equal(nm_etcd_parse_u64("18446744073709551616", &u), 0);
	assert_int_not_equal(nm_etcd_parse_i64("9223372036854775808", &i), 0);
	assert_int_not_equal(nm_etcd_parse_u64("-1", &u), 0);
	assert_int_not_equal(nm_etcd_parse_u64("", &u), 0);
	assert_int_not_equal(nm_etcd_parse_u64(" 1", &u), 0);
	assert_int_not_equal(nm_etcd_parse_u64("+1", &u), 0);
	assert_int_not_equal(nm_etcd_parse_u64("1e3", &u), 0);
	assert_int_not_equal(nm_etcd_parse_u64("1.0", &u), 0);
	assert_int_not_equal(nm_etcd_parse_i64("-", &i), 0);
	assert_int_not_equal(nm_etcd_parse_i64("12x", &i), 0);
}

static void test_prefix_end(void **state)
{
	char end[8];
	size_t n;

	(void)state;
	n = nm_etcd_prefix_end("abc", 3, end);
	assert_int_equal(n, 3);
	assert_memory_equal(end, "abd", 3);
	n = nm_etcd_prefix_end("a\xff", 2, end);
	assert_int_equal(n, 1);
	assert_memory_equal(end, "b", 1);
	n = nm_etcd_prefix_end("\xff\xff", 2, end);
	assert_int_equal(n, 1);
	assert_int_equal(end[0], 0);
	n = nm_etcd_prefix_end("", 0, end);
	assert_int_equal(n, 1);
	assert_int_equal(end[0], 0);
}

#define HDR \
	"\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":\"13668033151171901709\",\"revision\":\"42\",\"raft_term\":\"2\"}"

static void test_range_good(void **state)
{
	const char *j =
		"{" HDR ",\"kvs\":["
		"{\"key\":\"YQ==\",\"create_revision\":\"2\",\"mod_revision\":\"5\",\"version\":\"3\",\"value\":\"AP8A\",\"lease\":\"7587875498146453001\"},"
		"{\"key\":\"Yg==\",\"create_revision\":\"6\",\"mod_revision\":\"6\",\"version\":\"1\"}"
		"],\"more\":true,\"count\":\"10\"}\n";
	struct nm_etcd_header h;
	struct nm_etcd_kvs kvs = {};
	char reason[256] = "";

	(void)state;
	assert_int_equal(nm_etcd_decode_range(j, strlen(j), &h, &kvs, reason,
					      sizeof(reason)),
			 0);
	assert_true(h.cluster_id == 15118495548433857066ull);
	assert_int_equal(h.revision, 42);
	assert_int_equal(kvs.revision, 42);
	assert_int_equal(kvs.count, 10);
	assert_true(kvs.more);
	assert_int_equal(kvs.n, 2);
	assert_string_equal(kvs.kv[0].key, "a");
	assert_int_equal(kvs.kv[0].value_len, 3);
	assert_memory_equal(kvs.kv[0].value, "\x00\xff\x00", 3);
	assert_int_equal(kvs.kv[0].create_revision, 2);
	assert_int_equal(kvs.kv[0].mod_revision, 5);
	assert_int_equal(kvs.kv[0].version, 3);
	assert_true(kvs.kv[0].lease == 7587875498146453001ull);
	/* Absent value: empty, still NUL-terminated. */
	assert_int_equal(kvs.kv[1].value_len, 0);
	assert_string_equal(kvs.kv[1].value, "");
	assert_int_equal(kvs.kv[1].lease, 0);
	nm_etcd_kvs_free(&kvs);

	/* No kvs at all (empty range): fine. */
	j = "{" HDR "}";
	assert_int_equal(nm_etcd_decode_range(j, strlen(j), &h, &kvs, reason,
					      sizeof(reason)),
			 0);
	assert_int_equal(kvs.n, 0);
	nm_etcd_kvs_free(&kvs);
}

static void check_range_bad(const char *j, const char *why)
{
	struct nm_etcd_header h;
	struct nm_etcd_kvs kvs = {};
	char reason[256] = "";
	int ret;

	ret = nm_etcd_decode_range(j, strlen(j), &h, &kvs, reason,
				   sizeof(reason));
	nm_etcd_kvs_free(&kvs);
	if (ret != -EBADMSG)
		fail_msg("'%s' gave %d, not -EBADMSG", j, ret);
	if (!strstr(reason, why))
		fail_msg("'%s': '%s' lacks '%s'", j, reason, why);
}

static void test_range_bad(void **state)
{
	(void)state;
	check_range_bad("", "malformed JSON");
	check_range_bad("{\"header\":", "malformed JSON");
	check_range_bad("{\"kvs\":[]} x", "trailing data");
	check_range_bad("[1,2]", "not an object");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":\"YQ=\"}]}",
			"field key: bad base64");
	check_range_bad("{" HDR
			",\"kvs\":[{\"key\":\"YQ==\",\"value\":\"!!!!\"}]}",
			"field value: bad base64: character '!'");
	check_range_bad("{" HDR ",\"kvs\":[{\"value\":\"YQ==\"}]}",
			"field key: missing");
	check_range_bad("{" HDR ",\"kvs\":[{\"key\":5}]}",
			"field key: expected string");
	check_range_bad("{" HDR ",\"kvs\":{}}", "field kvs: expected array");
	check_range_bad("{" HDR ",\"kvs\":[7]}", "kv is not an object");
	/* A revision as a double would lose precision: refused. */
	check_range_bad("{" HDR
			",\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":1.5e3}]}",
			"field mod_revision");
	check_range_bad(
		"{" HDR
		",\"kvs\":[{\"key\":\"YQ==\",\"mod_revision\":\"12a\"}]}",
		"field mod_revision: bad int64");
	check_range_bad("{\"header\":{\"cluster_id\":\"-1\"}}",
			"field cluster_id: bad uint64");
	check_range_bad("{\"header\":{\"revision\":\"99999999999999999999\"}}",
			"field revision: bad int64");
	check_range_bad("{" HDR ",\"more\":\"yes\"}",
			"field more: not a boolean");
}

static void test_watch_msgs(void **state)
{
	const char *j =
		"{\"result\":{" HDR ",\"events\":["
		"{\"kv\":{\"key\":\"YQ==\",\"create_revision\":\"40\",\"mod_revision\":\"41\",\"version\":\"2\",\"value\":\"MQ==\"}},"
		"{\"type\":\"DELETE\",\"kv\":{\"key\":\"Yg==\",\"mod_revision\":\"42\"}}]}}";
	struct nm_etcd_watch_msg m;
	char reason[256] = "";

	(void)state;
	assert_int_equal(nm_etcd_decode_watch(j, strlen(j), &m, reason,
					      sizeof(reason)),
			 0);
	assert_int_equal(m.n_events, 2);
	assert_int_equal(m.events[0].type, NM_ETCD_PUT);
	assert_string_equal(m.events[0].kv.key, "a");
	assert_string_equal(m.events[0].kv.value, "1");
	assert_int_equal(m.events[0].kv.mod_revision, 41);
	assert_int_equal(m.events[1].type, NM_ETCD_DELETE);
	assert_string_equal(m.events[1].kv.key, "b");
	assert_int_equal(m.events[1].kv.mod_revision, 42);
	assert_false(m.created);
	nm_etcd_watch_msg_free(&m);

	j = "{\"result\":{" HDR ",\"created\":true}}";
	assert_int_equal(nm_etcd_decode_watch(j, strlen(j), &m, reason,
					      sizeof(reason)),
			 0);
	assert_true(m.created);
	assert_int_equal(m.n_events, 0);
	nm_etcd_watch_msg_free(&m);

	j = "{\"result\":{\"header\":{\"cluster_id\":\"1\"},\"canceled\":true,\"compact_revision\":\"3\"}}";
	assert_int_equal(nm_etcd_decode_watch(j, strlen(j), &m, reason,
					      sizeof(reason)),
			 0);
	assert_true(m.canceled);
	assert_int_equal(m.compact_revision, 3);
	nm_etcd_watch_msg_free(&m);

	j = "{\"result\":{\"watch_id\":\"-1\",\"created\":true,\"canceled\":true,\"cancel_reason\":\"rpc error: code = PermissionDenied desc = etcdserver: permission denied\"}}";
	assert_int_equal(nm_etcd_decode_watch(j, strlen(j), &m, reason,
					      sizeof(reason)),
			 0);
	assert_true(m.canceled);
	assert_non_null(strstr(m.reason, "permission denied"));
	nm_etcd_watch_msg_free(&m);

	j = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"transport is closing\",\"http_status\":\"Service Unavailable\"}}";
	assert_int_equal(nm_etcd_decode_watch(j, strlen(j), &m, reason,
					      sizeof(reason)),
			 0);
	assert_true(m.error);
	assert_string_equal(m.reason, "transport is closing");
	nm_etcd_watch_msg_free(&m);
}

static void check_watch_bad(const char *j, const char *why)
{
	struct nm_etcd_watch_msg m;
	char reason[256] = "";
	int ret;

	ret = nm_etcd_decode_watch(j, strlen(j), &m, reason, sizeof(reason));
	nm_etcd_watch_msg_free(&m);
	if (ret != -EBADMSG)
		fail_msg("'%s' gave %d, not -EBADMSG", j, ret);
	if (!strstr(reason, why))
		fail_msg("'%s': '%s' lacks '%s'", j, reason, why);
}

static void test_watch_bad(void **state)
{
	(void)state;
	check_watch_bad("{\"result\":{\"events\":[", "malformed JSON");
	check_watch_bad("{}", "without result");
	check_watch_bad("{\"result\":[]}", "field result: expected object");
	check_watch_bad(
		"{\"result\":{\"events\":[{\"type\":\"EXPIRE\",\"kv\":{\"key\":\"YQ==\"}}]}}",
		"unknown event type");
	check_watch_bad("{\"result\":{\"events\":[{\"type\":\"PUT\"}]}}",
			"event without kv");
	check_watch_bad(
		"{\"result\":{\"events\":[{\"kv\":{\"key\":\"Y Q=\"}}]}}",
		"bad base64");
	check_watch_bad("{\"result\":{\"compact_revision\":true}}",
			"field compact_revision");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64_roundtrip),
		cmocka_unit_test(test_b64_known),
		cmocka_unit_test(test_b64_rejects),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_prefix_end),
		cmocka_unit_test(test_range_good),
		cmocka_unit_test(test_range_bad),
		cmocka_unit_test(test_watch_msgs),
		cmocka_unit_test(test_watch_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
