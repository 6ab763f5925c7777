#!/bin/sh
# Prints the commit the source tree was built from, for server/info's
# "commit": git when it is installed; else .git read directly (a clone made
# without the git binary); else the COMMIT file, which `git archive` fills in
# (export-subst, see .gitattributes); else "unknown". Never fails: a tarball
# or a Debian package build without .git still builds.
cd "$(dirname "$0")/.." || { echo unknown; exit 0; }

hex() { # prints $1 when it is a commit id
    case $1 in
    *[!0-9a-f]* | "") return 1 ;;
    esac
    [ ${#1} -ge 7 ] && [ ${#1} -le 64 ] && echo "$1"
}

if [ -e .git ] && command -v git >/dev/null 2>&1 &&
    c=$(git rev-parse HEAD 2>/dev/null) && hex "$c"; then
    exit 0
fi
gitdir=.git
if [ -f .git ]; then # a worktree: "gitdir: PATH"
    gitdir=$(sed -n 's/^gitdir: //p' .git)
fi
if [ -f "$gitdir/HEAD" ]; then
    head=$(cat "$gitdir/HEAD")
    case $head in
    "ref: "*)
        ref=${head#ref: }
        common=$gitdir
        [ -f "$gitdir/commondir" ] && common="$gitdir/$(cat "$gitdir/commondir")"
        for d in "$gitdir" "$common"; do
            if [ -f "$d/$ref" ] && hex "$(cat "$d/$ref")"; then exit 0; fi
            if [ -f "$d/packed-refs" ] &&
                hex "$(awk -v r="$ref" '$2 == r { print $1; exit }' \
                    "$d/packed-refs")"; then exit 0; fi
        done
        ;;
    *) hex "$head" && exit 0 ;;
    esac
fi
if [ -f COMMIT ] && hex "$(head -n 1 COMMIT)"; then
    exit 0
fi
echo unknown
