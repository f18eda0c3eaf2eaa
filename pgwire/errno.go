package pgwire

import "syscall"

var errTooManyOpenFiles error = syscall.EMFILE
