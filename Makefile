# imgpipe — build, deps, test, demo, bench.
#
#   make              build $(BUILD)/imgpipe and the Lua C module $(BUILD)/lua/imgpipe.so
#   make deps         install missing Debian packages and the pinned npm packages
#   make test         deps + build + luacheck + busted + sanitizer and system-libvips runs
#   make demo         the main job end to end on the local stack
#   make bench        benchmarks against peers, writes bench/RESULTS.md
#   make layer        the Lambda artifacts in build/layers (see docs/deploy-runtime.md):
#                     runtime-$(ARCH).zip and pipelines.zip, or with PACKAGE=function
#                     function-$(ARCH).zip (runtime and pipelines as function code);
#                     ARCH=arm64 on an x86_64 machine cross-builds for Graviton
#                     (make deps-arm64 first) into build/arm64
#   make deploy-pipelines STACK=name   publish only a new pipelines layer to a deployed stack
#
# Switches: VIPS=prebuilt|system  SANITIZE=1  BUILD=dir  PACKAGE=layers|function  ARCH=x86_64|arm64

# The target architecture: this machine's by default. Another one is
# cross-built with Debian's cross compiler and :arm64 libraries, into its
# own BUILD folder (objects of two architectures never mix).
HOST_ARCH := $(subst aarch64,arm64,$(shell uname -m))
ARCH     ?= $(HOST_ARCH)
override ARCH := $(subst aarch64,arm64,$(subst amd64,x86_64,$(ARCH)))
ifeq ($(ARCH),x86_64)
  TRIPLET := x86_64-linux-gnu
  SHARP_ARCH := x64
else ifeq ($(ARCH),arm64)
  TRIPLET := aarch64-linux-gnu
  SHARP_ARCH := arm64
else
  $(error ARCH must be x86_64 or arm64)
endif
ifneq ($(ARCH),$(HOST_ARCH))
  CROSS := 1
  ifeq ($(origin CC),default)
    CC := $(TRIPLET)-gcc
  endif
  PKG_CONFIG := PKG_CONFIG_LIBDIR=/usr/lib/$(TRIPLET)/pkgconfig:/usr/share/pkgconfig pkg-config
  BUILD    ?= build/$(ARCH)
else
  PKG_CONFIG := pkg-config
endif

VIPS     ?= prebuilt
BUILD    ?= build
SANITIZE ?=
CC       ?= cc
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
PKGS      = lua5.4 libcurl libcrypto expat libmicrohttpd

PACKAGE  ?= layers
LAYER_OUT ?= build/layers
EXTRA_LIBS ?=

VERSION  := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

ifeq ($(VIPS),prebuilt)
  VIPS_LIB_DIR := $(CURDIR)/node_modules/@img/sharp-libvips-linux-$(SHARP_ARCH)/lib
  VIPS_INC_DIR := $(CURDIR)/node_modules/@img/sharp-libvips-dev/include
  VIPS_CFLAGS  := -I$(VIPS_INC_DIR) -I$(VIPS_INC_DIR)/glib-2.0 -I$(VIPS_LIB_DIR)/glib-2.0/include
  # The library lives in node_modules in a checkout; the packaged binary has
  # no RUNPATH at all (the bootstrap names the package's imgpipe/lib).
  VIPS_LIBS    := $(VIPS_LIB_DIR)/libvips-cpp.so.8.18.7 -Wl,-rpath,$(VIPS_LIB_DIR)
else ifeq ($(VIPS)$(CROSS),system)
  VIPS_CFLAGS  := $(shell pkg-config --cflags vips 2>/dev/null)
  VIPS_LIBS    := $(shell pkg-config --libs vips 2>/dev/null)
else ifeq ($(VIPS),system)
  $(error VIPS=system is built on the target architecture only (ARCH=$(ARCH) here is cross))
else
  $(error VIPS must be prebuilt or system)
endif

WARN      = -Wall -Wextra -Wformat=2 -Wno-unused-parameter
DEFS      = -D_GNU_SOURCE -DIMGPIPE_VERSION='"$(VERSION)"' -DIMGPIPE_VIPS_BUILD='"$(VIPS)"'
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs libcurl libcrypto expat libmicrohttpd 2>/dev/null)
ifneq ($(SANITIZE),)
  SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif
ALL_CFLAGS = -std=gnu11 -fPIC $(WARN) $(DEFS) $(CFLAGS) $(SAN_FLAGS) -Ibindings -Ibindings/core -Ihost $(VIPS_CFLAGS) $(PKG_CFLAGS)

BINDING_SRC = $(sort $(wildcard bindings/*.c bindings/core/*.c bindings/aws/*.c))
HOST_SRC    = $(sort $(wildcard host/*.c))
BINDING_OBJ = $(BINDING_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/package_lua.o
HOST_OBJ    = $(HOST_SRC:%.c=$(BUILD)/obj/%.o)

# The host links Lua and lua-cjson statically (nothing to install on Lambda)
# and exports the Lua API so that C modules loaded with require still work.
HOST_LIBS   = /usr/lib/$(TRIPLET)/liblua5.4.a /usr/lib/$(TRIPLET)/liblua5.4-cjson.a \
              $(VIPS_LIBS) $(PKG_LIBS) -lm -ldl -lpthread
MODULE_LIBS = $(VIPS_LIBS) $(PKG_LIBS) -lm -lpthread

.PHONY: all deps deps-test deps-system-vips deps-arm64 test test-fast demo bench lint clean layer format format-check print-cflags deploy-pipelines

all: $(BUILD)/imgpipe $(BUILD)/lua/imgpipe.so

$(BUILD)/obj/%.o: %.c $(wildcard bindings/*.h bindings/core/*.h bindings/aws/*.h host/*.h) | deps-build-check
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/imgpipe: $(HOST_OBJ) $(BINDING_OBJ)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -Wl,-E -o $@ $^ $(HOST_LIBS)

# The imgpipe Lua package (lua/imgpipe/) embedded in the binary and in
# imgpipe.so: lua/embed.lua writes every module's source into one C file
# (bindings/package.h; lua/manifest.lua lists the public modules).
LUA_PACKAGE_SRC = $(sort $(shell find lua/imgpipe -name '*.lua'))
$(BUILD)/gen/package_lua.c: lua/embed.lua lua/manifest.lua $(LUA_PACKAGE_SRC)
	@mkdir -p $(dir $@)
	lua5.4 lua/embed.lua lua/manifest.lua $(LUA_PACKAGE_SRC) >$@.tmp && mv $@.tmp $@

$(BUILD)/obj/package_lua.o: $(BUILD)/gen/package_lua.c bindings/package.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# One shared object holding every binding; Lua's all-in-one loader finds
# luaopen_imgpipe_<name> in it for require "imgpipe.<name>".
$(BUILD)/lua/imgpipe.so: $(BINDING_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN_FLAGS) -shared -o $@ $^ $(MODULE_LIBS)

# Fails early, with the fix, when the headers the build needs are not there.
.PHONY: deps-build-check
deps-build-check:
	@if [ -n "$(CROSS)" ]; then command -v $(CC) >/dev/null || { echo "ARCH=$(ARCH): $(CC) missing: run 'make deps-arm64'" >&2; exit 1; }; \
	 for f in /usr/lib/$(TRIPLET)/liblua5.4.a /usr/lib/$(TRIPLET)/liblua5.4-cjson.a \
	   /usr/lib/$(TRIPLET)/libcurl.so /usr/lib/$(TRIPLET)/libmicrohttpd.so $(VIPS_LIB_DIR)/libvips-cpp.so.8.18.7; do \
	   test -f "$$f" || { echo "ARCH=$(ARCH): $$f missing: run 'make deps-arm64'" >&2; exit 1; }; done; fi
	@test -f /usr/include/lua5.4/lua.h || { echo "Lua 5.4 headers missing: run 'make deps'" >&2; exit 1; }
	@if [ "$(VIPS)" = prebuilt ]; then test -f $(VIPS_INC_DIR)/vips/vips.h || { echo "prebuilt libvips missing: run 'make deps'" >&2; exit 1; }; \
	 else pkg-config --exists vips || { echo "libvips-dev missing: run 'make deps-system-vips'" >&2; exit 1; }; fi

deps:
	@infra/install-deps.sh build
deps-test:
	@infra/install-deps.sh test
	@spec/conformance/install.sh
deps-system-vips:
	@infra/install-deps.sh system-vips
deps-arm64:
	@infra/install-deps.sh arm64

# The whole suite: see spec/run.sh for the stages and the closing count line.
test: deps-test
	@spec/run.sh

# Only the default build and busted, for quick iterations.
test-fast: all
	@spec/run.sh --fast

lint:
	@luacheck -q lua pipelines spec examples bench infra

demo: deps
	@$(MAKE) --no-print-directory all
	@infra/demo.sh

bench:
	@infra/install-deps.sh bench
	@$(MAKE) --no-print-directory all
	@bench/run.sh

# The packaged binary: the same objects linked without RUNPATH (the
# bootstrap hands the package's lib/ to the packaged loader), and the static
# bootstrap. infra/layer.sh assembles and checks the package; EXTRA_LIBS are
# more shared libraries to ship in lib/ (the specs plant a bad one this way).
comma := ,
$(BUILD)/package/imgpipe: $(HOST_OBJ) $(BINDING_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Wl,-E -o $@ $^ $(filter-out -Wl$(comma)-rpath$(comma)%,$(HOST_LIBS))

$(BUILD)/package/bootstrap: infra/bootstrap.c
	@mkdir -p $(dir $@)
	$(CC) -static -s -std=gnu11 -O2 $(WARN) -D_GNU_SOURCE -o $@ $<

layer: $(BUILD)/package/imgpipe $(BUILD)/package/bootstrap
	@PACKAGE='$(PACKAGE)' ARCH='$(ARCH)' LAYER_OUT='$(LAYER_OUT)' EXTRA_LIBS='$(EXTRA_LIBS)' LAYER_LIB_PATH='$(VIPS_LIB_DIR)' CC='$(CC)' \
	  infra/layer.sh $(BUILD)/package

# Only the Lua pipelines: a new pipelines layer version, the runtime untouched.
STACK ?=
PIPELINES ?= pipelines
deploy-pipelines:
	@test -n "$(STACK)" || { echo "usage: make deploy-pipelines STACK=<stack name> [PIPELINES=<folder>]" >&2; exit 2; }
	@infra/deploy-pipelines.sh --stack "$(STACK)" --pipelines "$(PIPELINES)"

format:
	clang-format -i host/*.c host/*.h bindings/*.c bindings/*.h bindings/core/*.c bindings/core/*.h bindings/aws/*.c bindings/aws/*.h infra/*.c

# Fails when a C file differs from .clang-format.
format-check:
	@spec/support/format-check.sh

# The compiler flags of the build, for tools that parse the sources (clang-tidy).
print-cflags:
	@echo $(ALL_CFLAGS)

clean:
	rm -rf build
