# goiscsi. `make` builds the binaries; `make test` runs every test;
# `sudo make install` puts goiscsi on this host; `make deb` builds a Debian
# package. See README.md, "Install on a real host".
PREFIX ?= /usr
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DATADIR ?= $(PREFIX)/share/goiscsi
# initramfs-tools' hooks and scripts (dist/initramfs-tools: a boot from iSCSI).
INITRAMFSDIR ?= $(PREFIX)/share/initramfs-tools
# ISCSIADM_ALIAS=1 also installs goiscsiadm as iscsiadm, for tools that run it
# by that name; on the host, open-iscsi's iscsiadm is diverted as the package
# does it (dist/iscsiadm-alias).
ISCSIADM_ALIAS ?=
# Where make deb leaves the package.
DEBOUT ?= bin
GO ?= go
# make fuzz runs each fuzz target this long: a duration (10m) or a count (10000000x).
FUZZTIME ?= 10000000x

PROGRAMS := goiscsid goiscsiadm goiscsi-iname goiscsistart
UNITS := goiscsid.service goiscsid.socket goiscsi.service
VERSION := $(shell sed -n 's/^const version = "\(.*\)"$$/\1/p' cmd/goiscsid/daemon.go)
DEB_ARCH = $(shell dpkg --print-architecture)
DEB = $(DEBOUT)/goiscsi_$(VERSION)_$(DEB_ARCH).deb
# The programs are rebuilt when a Go file changes, not on every install: so
# `make && sudo make install` works where root has no Go.
GO_SOURCES := go.mod go.sum $(shell find . -name '*.go' -not -name '*_test.go' -not -path './test/*' -not -path './.cache/*')

.PHONY: all build test unit vm bench bench-vm fuzz clean install install-files uninstall deb

all: build

build: $(addprefix bin/,$(PROGRAMS))

$(addprefix bin/,$(PROGRAMS)) &: $(GO_SOURCES)
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ $(addprefix ./cmd/,$(PROGRAMS))

test:
	scripts/test

unit:
	scripts/test unit

vm:
	scripts/test vm

# The Go benchmarks of the hot code (PDU codec, text negotiation, netlink
# requests, records), with allocation counts.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Stock open-iscsi and goiscsi side by side in one VM boot (TCG: about 40
# minutes): 64 targets, 3 rounds, 1 LUN against 128, then 256 targets, 1024
# targets and 4 portals x 64 targets in and out. Not 4 x 256: LIO's portal
# setup alone grows faster than linearly (16 targets' 3 extra portals 3 s, 64
# targets' 32 s, 256 targets' over 10 minutes under TCG).
# The table goes to bench-vm.md; BENCH_FILES=DIR keeps goiscsid's logs.
bench-vm:
	GOISCSI_BENCH_N=64 GOISCSI_BENCH_ROUNDS=3 GOISCSI_BENCH_MANY_LUNS=128 GOISCSI_BENCH_BIG='256 1024 4x64' \
	GOISCSI_BENCH_OUT=$(CURDIR)/bench-vm.md GOISCSI_BENCH_FILES=$(BENCH_FILES) \
		$(GO) test -count=1 -tags vm -timeout 120m -run 'TestVMBench$$' -v ./test/vm

fuzz:
	scripts/fuzz $(FUZZTIME)

# The files the package owns: programs, systemd units and initramfs-tools'
# hook and script (their /usr/sbin paths made $(SBINDIR)), and the iscsid.conf
# that install copies to /etc/iscsi.
install-files: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DATADIR)
	install -m 0755 $(addprefix bin/,$(PROGRAMS)) $(DESTDIR)$(SBINDIR)/
	for u in $(UNITS); do \
		sed 's|/usr/sbin/|$(SBINDIR)/|g' dist/systemd/$$u >$(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 iscsid.conf.example $(DESTDIR)$(DATADIR)/iscsid.conf
	for f in hooks/goiscsi scripts/local-top/goiscsi; do \
		install -d $(DESTDIR)$(INITRAMFSDIR)/$$(dirname $$f) && \
		sed 's|/usr/sbin/|$(SBINDIR)/|g' dist/initramfs-tools/$$f >$(DESTDIR)$(INITRAMFSDIR)/$$f && \
		chmod 0755 $(DESTDIR)$(INITRAMFSDIR)/$$f || exit 1; \
	done

# install adds what a host needs in /etc/iscsi, never replacing what is there
# (an open-iscsi installation's records, configuration and initiator name are
# used as they are). The initiator name is made only on the host itself: a
# DESTDIR staging tree must not carry one name to many machines.
install: install-files
	install -d -m 0755 $(DESTDIR)/etc/iscsi
	test -e $(DESTDIR)/etc/iscsi/iscsid.conf || \
		install -m 0600 iscsid.conf.example $(DESTDIR)/etc/iscsi/iscsid.conf
ifeq ($(DESTDIR),)
	bin/goiscsi-iname -w /etc/iscsi/initiatorname.iscsi >/dev/null
	-systemctl daemon-reload 2>/dev/null
else
	@echo "make install: no initiator name in DESTDIR; run goiscsi-iname -w /etc/iscsi/initiatorname.iscsi on the host"
endif
ifneq ($(ISCSIADM_ALIAS),)
	dist/iscsiadm-alias install $(SBINDIR) $(DESTDIR)
endif

# uninstall removes what install-files put in place and the iscsiadm alias;
# /etc/iscsi stays. Units are disabled, not stopped: stopping goiscsi.service
# would log out of every session.
uninstall:
ifeq ($(DESTDIR),)
	-systemctl disable --quiet $(UNITS) 2>/dev/null
endif
	rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(PROGRAMS)) $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	rm -f $(DESTDIR)$(INITRAMFSDIR)/hooks/goiscsi $(DESTDIR)$(INITRAMFSDIR)/scripts/local-top/goiscsi
	rm -rf $(DESTDIR)$(DATADIR)
	dist/iscsiadm-alias uninstall $(SBINDIR) $(DESTDIR)
ifeq ($(DESTDIR),)
	-systemctl daemon-reload 2>/dev/null
endif
	@echo "make uninstall: kept /etc/iscsi (node records, iscsid.conf, initiator name); a running goiscsid keeps running"

# deb builds the Debian package with dpkg-deb alone (dist/debian says what its
# maintainer scripts do).
deb: $(DEB)

$(DEB): build dist/debian/control dist/debian/preinst dist/debian/postinst dist/debian/prerm dist/debian/postrm $(addprefix dist/systemd/,$(UNITS)) iscsid.conf.example
	rm -rf $(DEBOUT)/deb-root
	$(MAKE) --no-print-directory install-files DESTDIR=$(abspath $(DEBOUT))/deb-root PREFIX=/usr
	# iscsiadm at the paths open-iscsi's has (preinst diverts that one).
	install -d $(DEBOUT)/deb-root/sbin $(DEBOUT)/deb-root/usr/bin
	ln -s /usr/sbin/goiscsiadm $(DEBOUT)/deb-root/sbin/iscsiadm
	ln -s /usr/sbin/goiscsiadm $(DEBOUT)/deb-root/usr/bin/iscsiadm
	install -d $(DEBOUT)/deb-root/DEBIAN $(DEBOUT)/deb-root/usr/share/doc/goiscsi
	install -m 0644 README.md $(DEBOUT)/deb-root/usr/share/doc/goiscsi/
	install -m 0644 LICENSE $(DEBOUT)/deb-root/usr/share/doc/goiscsi/copyright
	sed -e 's/@VERSION@/$(VERSION)/' -e 's/@ARCH@/$(DEB_ARCH)/' \
		-e "s/@SIZE@/$$(du -sk --exclude=DEBIAN $(DEBOUT)/deb-root | cut -f1)/" \
		dist/debian/control >$(DEBOUT)/deb-root/DEBIAN/control
	install -m 0755 dist/debian/preinst dist/debian/postinst dist/debian/prerm dist/debian/postrm $(DEBOUT)/deb-root/DEBIAN/
	dpkg-deb --root-owner-group --build $(DEBOUT)/deb-root $@
	rm -rf $(DEBOUT)/deb-root

clean:
	rm -rf bin
