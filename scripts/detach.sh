# shellcheck shell=bash
# Sourced by host.sh, start-lxcfs.sh and incus-netns.sh: start a daemon that outlives us.
#
#   detach OUT COMMAND [ARG...]   run COMMAND in the background, output appended to OUT
#
# setsid: the daemon outlives the shell (and process group) that started it. cd /: it and
# its helpers (rsync for snapshots) keep their working directory, which the caller (a
# test's lab tree, a CI clone) may delete. A lock the caller holds (`flock /tmp/lock make
# host`) must not live on in the daemon, or every later `flock` on it waits forever: the
# descriptors above stderr are closed first.
detach() {
  local out=$1
  shift
  (
    cd / || exit 1
    for fd in /proc/"$BASHPID"/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    setsid nohup "$@" >>"$out" 2>&1 &
  )
}
