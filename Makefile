# goiscsi. `make` builds the binaries; `make test` runs every test.
PREFIX ?= /usr
DESTDIR ?=
GO ?= go
BINARIES := goiscsid goiscsiadm

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
	scripts/fuzz 10m

clean:
	rm -rf bin
