//go:build !linux

package main

// reexec does nothing where /proc/self/exe is not available.
func reexec([]string) {}
