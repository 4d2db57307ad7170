# SPDX-License-Identifier: GPL-2.0
# Shared settings for rdif's scripts; sourced, never run.

RDIF_ROOT=${RDIF_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
RDIF_CACHE=${RDIF_CACHE:-$HOME/.cache/rdif}
RDIF_LLVM=${RDIF_LLVM:--19}
RDIF_KSERIES=${RDIF_KSERIES:-7.3}
RDIF_KSUITE=${RDIF_KSUITE:-trixie-backports}
RDIF_CONFIG_FRAGMENT=${RDIF_CONFIG_FRAGMENT:-$RDIF_ROOT/scripts/rdif.config}
# Which kernel: "test" (rdif.config: lock debugging, lockdep, overflow
# checks; what the tests run on), "bench" (rdif.config plus
# rdif-bench.config, which turns those off; what the benchmark runs on) or
# "kasan" (rdif.config plus rdif-kasan.config: KASAN, KFENCE, forced kmap
# mappings; `make check KERNEL=kasan`).
RDIF_KERNEL_FLAVOUR=${RDIF_KERNEL_FLAVOUR:-test}

RDIF_VENV=$RDIF_CACHE/venv
export PATH="$RDIF_VENV/bin:$HOME/.cargo/bin:$HOME/.pyenv/shims:$PATH"

rdif_log() { printf '[rdif] %s\n' "$*" >&2; }
rdif_die() { printf '[rdif] error: %s\n' "$*" >&2; exit 1; }

# A private apt configuration: its own sources list, lists and cache under
# $RDIF_CACHE/apt (binary packages) or, with --src, $RDIF_CACHE/apt-src
# (deb-src: source packages), so the host's apt sources are never touched.
rdif_apt_dir() {
	if [ "${1:-}" = --src ]; then
		printf '%s\n' "$RDIF_CACHE/apt-src"
	else
		printf '%s\n' "$RDIF_CACHE/apt"
	fi
}

# rdif_apt_opts [--src]: apt-get/apt-cache options for that configuration.
rdif_apt_opts() {
	local a
	a=$(rdif_apt_dir "$@")
	printf '%s\n' \
		-o "Dir::Etc::SourceList=$a/sources.list" \
		-o "Dir::Etc::SourceParts=$a/sources.list.d" \
		-o "Dir::State::Lists=$a/lists" \
		-o "Dir::Cache=$a/cache" \
		-o "Dir::State::status=$a/status" \
		-o "APT::Sandbox::User=root" \
		-o "Debug::NoLocking=1"
}

# rdif_private_apt [--src] SUITE...: prepare (and refresh once a day) the
# private apt lists for the given Debian suites (--src: their sources).
rdif_private_apt() {
	local src='' type=deb
	[ "${1:-}" = --src ] && { src=--src; type=deb-src; shift; }
	local a suites="$*" stamp
	a=$(rdif_apt_dir $src)
	mkdir -p "$a/lists/partial" "$a/cache/archives/partial" "$a/sources.list.d"
	: >"$a/status"
	local want="$type [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suites main"
	stamp=$a/lists/.rdif-updated
	if [ "$(cat "$a/sources.list" 2>/dev/null)" != "$want" ]; then
		printf '%s\n' "$want" >"$a/sources.list"
		rm -f "$stamp"
	fi
	if [ -z "$(find "$stamp" -mmin -1440 2>/dev/null)" ]; then
		local -a opts
		mapfile -t opts < <(rdif_apt_opts $src)
		apt-get "${opts[@]}" -q update >&2 || rdif_die "private apt update failed"
		touch "$stamp"
	fi
}

# The config fragments of the kernel flavour, in the order they apply.
rdif_config_fragments() {
	printf '%s\n' "$RDIF_CONFIG_FRAGMENT"
	case $RDIF_KERNEL_FLAVOUR in
	test) ;;
	bench) printf '%s\n' "$RDIF_ROOT/scripts/rdif-bench.config" ;;
	kasan) printf '%s\n' "$RDIF_ROOT/scripts/rdif-kasan.config" ;;
	*) rdif_die "RDIF_KERNEL_FLAVOUR must be test, bench or kasan, not '$RDIF_KERNEL_FLAVOUR'" ;;
	esac
}

# The fragments merged into one: for each option, the last fragment that
# sets it wins.
rdif_merged_fragment() {
	local -a frags
	mapfile -t frags < <(rdif_config_fragments)
	awk '
	/^CONFIG_[A-Za-z0-9_]+=/ { o = $0; sub(/=.*/, "", o) }
	/^# CONFIG_[A-Za-z0-9_]+ is not set$/ { o = $2 }
	o != "" { if (!(o in v)) order[n++] = o; v[o] = $0; o = "" }
	END { for (i = 0; i < n; i++) print v[order[i]] }
	' "${frags[@]}"
}

# Hash of everything a built test kernel depends on: the fragments, the
# kernel build script and the toolchain that must also build the module.
rdif_kernel_key() {
	{
		rdif_merged_fragment
		# its recipe: not its comments, blank lines or indentation
		# (the progress line changes nothing that is built)
		sed -e 's/^[[:space:]]*//' -e '/^#/d' -e '/^$/d' -e '/^rdif_build_progress /d' \
			"$RDIF_ROOT/scripts/kernel"
		rustc --version 2>/dev/null
		"clang$RDIF_LLVM" --version 2>/dev/null | head -n 1
		bindgen --version 2>/dev/null
	} | sha256sum | cut -c1-12
}

# rdif_build_progress DIR FLAVOUR: in the background, while the kernel tree
# DIR builds, say once a minute how many objects are built against the
# count of the last build of FLAVOUR (about 1800 for the test kernel), so
# that a first build is not minutes of silence. It stops when DIR is built
# (recording the count for next time) or the caller exits.
rdif_build_progress() {
	local dir=$1 count=$RDIF_CACHE/objects-$2 parent=$$ start expect
	start=$(date +%s)
	expect=$(cat "$count" 2>/dev/null || true)
	[[ $expect =~ ^[1-9][0-9]*$ ]] || expect=1800
	(
		while sleep 60; do
			if [ -f "$dir/.rdif-built" ]; then
				find "$dir" -name '*.o' | wc -l >"$count"
				exit 0
			fi
			kill -0 "$parent" 2>/dev/null || exit 0
			local n pct
			n=$(find "$dir" -name '*.o' 2>/dev/null | wc -l)
			pct=$((n * 100 / expect))
			[ $pct -le 99 ] || pct=99
			rdif_log "kernel build: $n of about $expect objects ($pct %) after $((($(date +%s) - start) / 60)) min"
		done
	) </dev/null >/dev/null &
}

# Print the newest cached, completely built kernel tree for the current key.
rdif_cached_kdir() {
	local key d best=
	key=$(rdif_kernel_key)
	for d in "$RDIF_CACHE"/linux-"$RDIF_KSERIES".*-"$key"; do
		[ -f "$d/.rdif-built" ] && best=$d
	done
	[ -n "$best" ] && printf '%s\n' "$best"
}
