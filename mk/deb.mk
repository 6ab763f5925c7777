# The Debian packages (debian/): libapache2-mod-sts-token and sts-token-cli.
#
#   make deb         build them with dpkg-buildpackage -us -uc -b in a copy
#                    of the tree, then lintian (fails on errors); the .debs
#                    land in build/deb/
#   make deb-check   install them on a fresh Debian 12 (../shared's
#                    fresh-debian tool) and authenticate a token end to end
#                    (tests/package/fresh-install.sh; several minutes)

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

deb-check:
	$(FRESH_DEBIAN) run --name deb-check --timeout 2400 \
	    --script tests/package/fresh-install.sh $(DEB_CHECK_ENV)
