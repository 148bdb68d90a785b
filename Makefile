# tern developer entry points. On a fresh Debian 12 machine, as root:
#   make run    install what is missing, build, start tern on the embedded default config
#   make test   install what is missing, build, run every test (unit, fuzz corpora, integration)
# Other targets: make build | make asan-test | make fuzz | make bench | make bench-dkim | make format | make clean

BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
PY         := /usr/bin/python3
CMAKE_GEN  := -G Ninja

# Debian packages the build, the tests and the benchmarks need.
PACKAGES := build-essential cmake ninja-build ccache pkg-config git \
  libssl-dev openssl libboost1.81-dev libtomlplusplus-dev libgtest-dev libgmock-dev \
  libunbound-dev libevent-dev nettle-dev libpsl-dev libyaml-cpp-dev libbenchmark-dev clang libclang-rt-14-dev \
  python3 python3-pytest python3-aiosmtpd python3-dkim python3-spf python3-dnspython python3-cryptography python3-milter opendkim \
  swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl libdigest-hmac-perl postfix dovecot-core dovecot-lmtpd dnsmasq-base microsocks iproute2 procps

.PHONY: all deps build run test unit suites integration asan-test asan-integration fuzz bench bench-relay bench-dkim clean format

all: build

deps:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "missing packages:$$missing (run as root or install them)"; exit 1; fi; \
	  echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/tern serve

unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

integration:
	TERN_BIN=$(CURDIR)/$(BUILD)/tern $(PY) -m pytest -q -p no:cacheprovider tests/integration

# The integration suite against the ASan+UBSan build of tern (not in CI:
# slower, and timing-sensitive tests may need retries under the sanitizers).
asan-integration: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS) --target tern
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  TERN_BIN=$(CURDIR)/$(ASAN_BUILD)/tern $(PY) -m pytest -q -p no:cacheprovider tests/integration

# The published test suites (SPF, DKIM, DMARC, ARC) run inside ctest; this
# prints their pass counts (ctest hides the output of passing tests).
SUITE_TESTS := auth_spf_suite_test auth_dkim_suites_test auth_dmarc_test auth_dmarc_authheaders_test auth_arc_test
suites:
	@echo "== published test suites =="
	@for t in $(SUITE_TESTS); do ./$(BUILD)/tests/unit/auth/$$t 2>/dev/null | grep -E "[0-9]+/[0-9]+ (passed|cases pass|signatures pass|canonicalizations)" || true; done

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300
	@$(MAKE) --no-print-directory suites
	TERN_BIN=$(CURDIR)/$(BUILD)/tern $(PY) -m pytest -q -p no:cacheprovider tests/integration

$(ASAN_BUILD)/build.ninja:
	cmake -S . -B $(ASAN_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON

asan-test: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) --timeout 600

$(FUZZ_BUILD)/build.ninja:
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_FUZZ=ON

# Builds the libFuzzer binaries; run one with e.g. build-fuzz/tests/fuzz/fuzz_smtp_command tests/fuzz/corpus/smtp_command
FUZZ_TARGETS = $(patsubst tests/fuzz/%.cmake,fuzz_%,$(wildcard tests/fuzz/*.cmake))
fuzz: deps $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(FUZZ_TARGETS)

bench: build
	bench/accept

bench-relay: build
	bench/relay

# DKIM hashing/verification speed next to `openssl speed` (issue: body hashing >= 60% of sha256)
bench-dkim: build
	bench/dkim $(BUILD)

format:
	clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
