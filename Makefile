# SPDX-License-Identifier: GPL-2.0
#
# rdif out-of-tree module build, plus the project's developer entry points.
#
#   make                  build rdif.ko (kernel tree: $(KDIR), built if needed)
#   make KDIR=/path       build against another configured and built 7.3+ tree
#   make CLIPPY=1         the same, with clippy lints on the Rust code
#   make kdir             print the kernel tree used
#   make check            set up, build and run every test in a guest, each
#                         matrix (file systems, profiles, input sweeps) in a
#                         sample (KERNEL=kasan: on the KASAN kernel instead)
#   make check-full       the same with every case of every matrix (about
#                         6 minutes longer)
#   make powercut         power cuts of a file-backed device (CUTS=N, default
#                         100; `make check` runs two)
#   make crashtest        XFS and ext4 crash tests on a caching PI device:
#                         N power cuts per file system (default 100, half
#                         per format) and 10 negative-control seeds
#   make lowercut         power cuts of a file store whose medium is a caching
#                         rdif that loses unflushed writes (CUTS=N, default
#                         100; `make check` runs two)
#   make demo             set up, build, boot a guest with rdif loaded
#   make bench            set up, build and benchmark rdif against other drivers
#                         in a guest under QEMU icount (BENCH=goals: only what
#                         goals N1-N5 compare; BENCH=short: a development run;
#                         BENCH=scaling: goal N6, real time on 2 vCPUs)
#   make rust-analyzer    write rust-project.json for editors (kernel crates
#                         and rdif's own)
#   make clean

LLVM ?= -19
export LLVM

RDIF_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))

ifeq ($(origin KDIR),undefined)
KDIR = $(shell $(RDIF_ROOT)/scripts/setup --part build >&2 && $(RDIF_ROOT)/scripts/kernel)
endif

.PHONY: all modules kdir clean check check-full demo bench setup rustfmt powercut crashtest lowercut rust-analyzer

all: modules

modules:
	@kdir="$(KDIR)"; test -n "$$kdir" || { echo "no kernel tree" >&2; exit 1; }; \
	$(MAKE) -C "$$kdir" M=$(RDIF_ROOT) LLVM=$(LLVM) modules

kdir:
	@echo $(KDIR)

setup:
	@$(RDIF_ROOT)/scripts/setup

rustfmt:
	@kdir="$(KDIR)"; $(MAKE) -C "$$kdir" M=$(RDIF_ROOT) LLVM=$(LLVM) rustfmt

rust-analyzer:
	@kdir="$(KDIR)"; test -n "$$kdir" || { echo "no kernel tree" >&2; exit 1; }; \
	$(MAKE) -s -C "$$kdir" M=$(RDIF_ROOT) LLVM=$(LLVM) rust-analyzer && \
	$(RDIF_ROOT)/scripts/rust-analyzer $(RDIF_ROOT)

clean:
	@kdir="$$($(RDIF_ROOT)/scripts/kernel --print-only 2>/dev/null || echo $(KDIR))"; \
	if [ -n "$$kdir" ]; then $(MAKE) -C "$$kdir" M=$(RDIF_ROOT) LLVM=$(LLVM) clean; fi
	@$(MAKE) -C $(RDIF_ROOT)/tests clean >/dev/null 2>&1 || true

check:
	@RDIF_KERNEL_FLAVOUR=$(or $(KERNEL),test) $(RDIF_ROOT)/scripts/check

check-full:
	@RDIF_THOROUGH=1 RDIF_KERNEL_FLAVOUR=$(or $(KERNEL),test) $(RDIF_ROOT)/scripts/check

powercut:
	@RDIF_CHECK_ONLY=powercut RDIF_POWERCUTS=$(or $(CUTS),100) $(RDIF_ROOT)/scripts/check

lowercut:
	@$(RDIF_ROOT)/scripts/powercut --medium $(or $(CUTS),100)

crashtest:
	@RDIF_CRASH_SEEDS=$$(( ($(or $(N),100) + 1) / 2 )) RDIF_CRASH_NEG=10 \
		RDIF_CRASH_CASES=xfs_crc16,xfs_crc64,ext4_crc16,ext4_crc64,negative_control \
		RDIF_TEST_TIMEOUT=$$(( 600 + 60 * $(or $(N),100) )) \
		$(RDIF_ROOT)/scripts/check rdif_crashfs.sh

demo:
	@$(RDIF_ROOT)/scripts/demo

bench:
	@BENCH=$(or $(BENCH),full) $(RDIF_ROOT)/scripts/bench
