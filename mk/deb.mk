# The Debian packages (debian/): libapache2-mod-sts-token and sts-token-cli.
#
#   make deb         build them with dpkg-buildpackage -us -uc -b in a copy
#                    of the tree, then lintian (fails on errors); the .debs
#                    land in build/deb/
#   make deb-check   make deb, then install the packages on a pristine
#                    Debian 12 (../shared/tools/fresh-debian, as root) set up
#                    the README's way, authenticate a token end to end and
#                    upgrade the module's package (tests/package/
#                    fresh-install.sh; a minute or more, mostly apt; the
#                    log's path is printed)

DEB_DIR := build/deb
DEB_CHECK_ENV ?= --env STS_PORT=38115 --env STS_PGPORT=54415
FRESH_DEBIAN ?= ../shared/tools/fresh-debian/fresh-debian.sh

.PHONY: deb deb-check

deb: deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	tar -cf - --exclude=./.git --exclude=./build --exclude='./build-*' \
	    --exclude=./run --exclude=./bin --exclude='./modules/*.so' . \
	    | tar -C $(DEB_DIR)/src -xf -
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b
	lintian --fail-on error,warning --display-info $(DEB_DIR)/*.changes
	@ls -1 $(DEB_DIR)/*.deb

# The machine gets the .debs as its ../shared (a clone of HEAD is its
# working directory: commit first).
deb-check: deb
	rm -rf build/deb-check && mkdir -p build/deb-check
	cp $(DEB_DIR)/libapache2-mod-sts-token_*.deb $(DEB_DIR)/sts-token-cli_*.deb \
	    build/deb-check/
	$(FRESH_DEBIAN) run --name deb-check --timeout 2400 \
	    --shared $(CURDIR)/build/deb-check \
	    --script tests/package/fresh-install.sh $(DEB_CHECK_ENV)
