# goiscsi. `make` builds the binaries; `make test` runs every test.
PREFIX ?= /usr
DESTDIR ?=
GO ?= go
BINARIES := goiscsid goiscsiadm
# make fuzz runs each fuzz target this long: a duration (10m) or a count (10000000x).
FUZZTIME ?= 10000000x

.PHONY: all build test unit vm fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/...

test:
	scripts/test

unit:
	scripts/test unit

vm:
	scripts/test vm

fuzz:
	scripts/fuzz $(FUZZTIME)

clean:
	rm -rf bin
