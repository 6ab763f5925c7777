#!/bin/sh
# Prints the request's CGI environment, one VAR=value per line, sorted.
printf 'Content-Type: text/plain\r\n\r\n'
env | LC_ALL=C sort
