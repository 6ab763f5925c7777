/*
 * version.h - the project's version, shared by the module and the CLI.
 */
#ifndef STS_VERSION_H
#define STS_VERSION_H

#define STS_VERSION "0.1.0"

/* The commit built from: the Makefile passes it to the objects that show it
 * (scripts/commit.sh); "unknown" elsewhere. */
#ifndef STS_COMMIT
#define STS_COMMIT "unknown"
#endif

/* The StackState API version the token API implements, reported as
 * server/info "version": StackState 5.1's service token API, the release that
 * documents service tokens with the routes and shapes of StackState's spec.
 * StackState's CLI requires major 5 and at least 5.0.0, comparing
 * "MAJOR.MINOR.PATCH-COMMIT": a non-empty commit makes it a semver
 * pre-release, so 5.0.0 would be refused and 5.1.0 is not. The module's own
 * version is "platformVersion". */
#define STS_API_VERSION_MAJOR 5
#define STS_API_VERSION_MINOR 1
#define STS_API_VERSION_PATCH 0

#endif
