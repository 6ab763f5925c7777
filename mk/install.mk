# Installation, from source or into a package's staging tree.
#
#   make install      the module, its Debian configuration, sts, sts(1), SQL
#   make uninstall    removes what make install installed
#   make install DESTDIR=/tmp/stage PREFIX=/usr    staged: writes only below DESTDIR
#
# The module goes where Apache keeps modules (MODDIR), the configuration
# where Debian's a2enmod/a2enconf look for it (APACHE_CONFDIR); the rest
# below PREFIX. A configuration file that exists already is kept: the
# shipped one is written beside it as *.dist.

MODDIR ?= $(shell $(APXS) -q LIBEXECDIR)
APACHE_CONFDIR ?= /etc/apache2
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/mod_sts_token

MODS_AVAILABLE := $(DESTDIR)$(APACHE_CONFDIR)/mods-available
CONF_AVAILABLE := $(DESTDIR)$(APACHE_CONFDIR)/conf-available
# Configuration files: installed path = shipped file.
INSTALL_CONFS := $(MODS_AVAILABLE)/sts_token.conf=conf/sts_token.conf \
                 $(CONF_AVAILABLE)/sts-token-locations.conf=conf/sts-token-locations.conf
SQL_FILES := sql/schema.sql $(wildcard sql/migrations/*.sql)

.PHONY: install install-module install-sql uninstall uninstall-check \
	uninstall-module uninstall-cli

install: install-module install-sql install-cli

install-module: $(MODULE_SO)
	install -D -m 0644 $(MODULE_SO) $(DESTDIR)$(MODDIR)/mod_sts_token.so
	@mkdir -p $(MODS_AVAILABLE)
	sed 's#/usr/lib/apache2/modules/#$(MODDIR)/#' conf/sts_token.load \
	    > $(MODS_AVAILABLE)/sts_token.load.tmp
	chmod 0644 $(MODS_AVAILABLE)/sts_token.load.tmp
	mv -f $(MODS_AVAILABLE)/sts_token.load.tmp $(MODS_AVAILABLE)/sts_token.load
	@set -e; for pair in $(INSTALL_CONFS); do \
	    dst=$${pair%%=*}; src=$${pair#*=}; \
	    if [ -e "$$dst" ] && ! cmp -s "$$src" "$$dst"; then \
	        install -m 0644 "$$src" "$$dst.dist"; \
	        echo "kept $$dst (changed); the shipped one is $$dst.dist"; \
	    else \
	        install -D -m 0644 "$$src" "$$dst"; echo "installed $$dst"; \
	    fi; \
	done

install-sql:
	@set -e; for f in $(SQL_FILES); do \
	    install -D -m 0644 "$$f" "$(DESTDIR)$(DATADIR)/$$f"; \
	done

# Refuses while the module is enabled: a dangling mods-enabled link would
# keep Apache from starting. An enabled locations file stays: it keeps
# denying what the module protected.
uninstall: uninstall-module uninstall-cli

# A prerequisite of every removal (also under make -j), so nothing is
# removed before it refuses.
uninstall-check:
	@if [ -e $(DESTDIR)$(APACHE_CONFDIR)/mods-enabled/sts_token.load ]; then \
	    echo "sts_token is enabled: run a2dismod sts_token first" >&2; \
	    exit 1; \
	fi

uninstall-module: uninstall-check
	rm -f $(DESTDIR)$(MODDIR)/mod_sts_token.so $(MODS_AVAILABLE)/sts_token.load
	@set -e; for pair in $(INSTALL_CONFS); do \
	    dst=$${pair%%=*}; src=$${pair#*=}; \
	    enabled=$$(echo "$$dst" | sed 's#/conf-available/#/conf-enabled/#'); \
	    rm -f "$$dst.dist"; \
	    if [ -e "$$dst" ] && ! cmp -s "$$src" "$$dst"; then \
	        echo "kept $$dst: it was changed"; \
	    elif [ "$$enabled" != "$$dst" ] && [ -e "$$enabled" ]; then \
	        echo "kept $$dst: it is enabled (its locations stay denied)"; \
	    else \
	        rm -f "$$dst"; \
	    fi; \
	done
	@set -e; for f in $(SQL_FILES); do rm -f "$(DESTDIR)$(DATADIR)/$$f"; done
	-rmdir $(DESTDIR)$(DATADIR)/sql/migrations $(DESTDIR)$(DATADIR)/sql \
	    $(DESTDIR)$(DATADIR) 2>/dev/null

uninstall-cli: uninstall-check
	rm -f $(DESTDIR)$(BINDIR)/sts $(DESTDIR)$(MANDIR)/man1/sts.1
