# SPDX-License-Identifier: GPL-2.0
# One entry point: make, make test, make demo, make bench.
# Everything generated lands under build/.

BUILD ?= build
V ?= 0
ifeq ($(V),0)
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
else
Q :=
msg =
endif

CC ?= gcc
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)

DEPFLAGS = -MMD -MP
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -I. -I$(BUILD)/skel \
	  $(shell pkg-config --cflags json-c 2>/dev/null)
LDLIBS_AGENT := -lbpf -lelf -lz -lyaml -lcurl -lmicrohttpd -lmnl -lpthread $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)
LDLIBS_CMOCKA := -lcmocka
# The CNI plugin talks HTTP to the agent and JSON to the runtime; -lbpf only
# because the shared logger routes libbpf's messages.
LDLIBS_CNI := -lcurl -lbpf $(shell pkg-config --libs json-c 2>/dev/null || echo -ljson-c)

BPF_CFLAGS := -target bpf -O2 -g -Wall -Wextra -Werror -D__TARGET_ARCH_$(ARCH) \
	      -I. -I/usr/include/$(MULTIARCH)

BPF_SRCS := $(wildcard bpf/*.bpf.c bench/*.bpf.c)
BPF_OBJS := $(patsubst %.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst %.bpf.c,$(BUILD)/skel/%.skel.h,$(notdir $(BPF_SRCS)))

MAINS := agent/nodemeshctl.c agent/nodemesh-agent.c agent/nodemesh-cni.c
LIB_SRCS := $(filter-out $(MAINS),$(wildcard agent/*.c))
LIB := $(BUILD)/libnodemesh.a
BINS := $(patsubst agent/%.c,$(BUILD)/%,$(MAINS))
# nodemeshctl's command groups: linked into it only, not into the library.
CTL_SRCS := $(wildcard agent/ctl/*.c)
CTL_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(CTL_SRCS))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
BPFT_SRCS := $(wildcard tests/bpf/test_*.c)
ETCDT_SRCS := $(wildcard tests/etcd/test_*.c)
TESTLIB_SRCS := $(wildcard tests/lib/*.c)
E2E_HELPER_SRCS := $(wildcard tests/e2e/*.c)
BENCH_SRCS := $(wildcard bench/bench_*.c)
UNIT_BINS := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRCS))
BPFT_BINS := $(patsubst %.c,$(BUILD)/%,$(BPFT_SRCS))
ETCDT_BINS := $(patsubst %.c,$(BUILD)/%,$(ETCDT_SRCS))
E2E_BINS := $(patsubst %.c,$(BUILD)/%,$(E2E_HELPER_SRCS))
BENCH_BINS := $(patsubst %.c,$(BUILD)/%,$(BENCH_SRCS))
# Helpers of the bench scripts (bench/bench_*.sh): not bench_* themselves.
BENCH_TOOLS := $(BUILD)/bench/rr
TESTLIB_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(TESTLIB_SRCS))

.DELETE_ON_ERROR:
.PHONY: all deps test demo bench clean format

all: $(BPF_OBJS) $(SKELS) $(BINS) $(UNIT_BINS) $(BPFT_BINS) $(ETCDT_BINS) $(E2E_BINS) $(BENCH_BINS) $(BENCH_TOOLS)

deps:
	$(Q)scripts/deps.sh

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tests/run.sh $(BUILD)

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/demo.sh $(BUILD)

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/run.sh $(BUILD)

# Kernel side: one object per entry file, BTF included (-g), then a skeleton.
$(BUILD)/%.bpf.o: %.bpf.c
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/skel/%.skel.h: $(BUILD)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

$(BUILD)/skel/%.skel.h: $(BUILD)/bench/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

# Userspace: every object may include a skeleton, so skeletons come first.
$(BUILD)/%.o: %.c | $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(LIB): $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)ar rcs $@ $^

$(BUILD)/nodemeshctl: $(BUILD)/agent/nodemeshctl.o $(CTL_OBJS) $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS_AGENT) -o $@

$(BUILD)/nodemesh-cni: $(BUILD)/agent/nodemesh-cni.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS_CNI) -o $@

$(BUILD)/%: $(BUILD)/agent/%.o $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS_AGENT) -o $@

$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(TESTLIB_OBJS) $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS_CMOCKA) $(LDLIBS_AGENT) -o $@

$(BUILD)/tests/bpf/%: $(BUILD)/tests/bpf/%.o $(TESTLIB_OBJS) $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS_AGENT) -o $@

# etcd tests start real etcd processes on 127.0.0.1 (tests/lib/etcd_srv.c).
$(BUILD)/tests/etcd/%: $(BUILD)/tests/etcd/%.o $(TESTLIB_OBJS) $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS_AGENT) -o $@

$(BUILD)/tests/e2e/%: $(BUILD)/tests/e2e/%.o
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(TESTLIB_OBJS) $(LIB)
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LDLIBS_AGENT) -o $@

# TCP request/response latency tool: plain libc, no library.
$(BUILD)/bench/rr: $(BUILD)/bench/rr.o
	$(call msg,LD,$@)
	$(Q)$(CC) $(CFLAGS) $^ -o $@

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	$(Q)rm -rf $(BUILD)

.SECONDARY:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
