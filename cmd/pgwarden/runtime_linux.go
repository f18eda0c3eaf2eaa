package main

import (
	"os"
	"syscall"
)

// reexec replaces the process image with this binary and env: same PID
// (process managers and kill -9 see one process), same name in ps (the
// resolved path, not /proc/self/exe, whose exec would rename it "exe").
func reexec(env []string) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}
