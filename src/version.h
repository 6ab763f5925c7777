/*
 * version.h - the project's version, shared by the module and the CLI.
 */
#ifndef STS_VERSION_H
#define STS_VERSION_H

#define STS_VERSION "0.1.0"

#endif
