package pgtest

import "syscall"

var syscallZero = syscall.Signal(0)
