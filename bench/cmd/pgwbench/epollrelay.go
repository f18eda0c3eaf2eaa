package main

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// runEpollRelay is the epoll-relay calibration target: the same plain byte
// relay as go-relay, but the way pgbouncer runs — one OS thread, one epoll
// set, non-blocking sockets taken out of Go's netpoller — so that its CPU
// per transaction is what a Go relay costs without Go's netpoller and
// scheduler on the path. Accepting and dialing stay on ordinary goroutines.
func runEpollRelay(listen, upstream string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	peer := map[int32]int32{}
	go epollLoop(ep, &mu, peer)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				c.Close()
				return
			}
			a, err1 := rawFD(c)
			b, err2 := rawFD(u)
			if err := errors.Join(err1, err2); err != nil {
				return
			}
			mu.Lock()
			peer[a], peer[b] = b, a
			mu.Unlock()
			for _, fd := range []int32{a, b} {
				ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: fd}
				_ = syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, int(fd), &ev)
			}
		}()
	}
}

// rawFD takes c's socket out of Go's netpoller: a non-blocking duplicate
// that this relay owns; c itself is closed.
func rawFD(c net.Conn) (int32, error) {
	f, err := c.(*net.TCPConn).File()
	c.Close()
	if err != nil {
		return -1, err
	}
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return -1, err
	}
	return int32(fd), syscall.SetNonblock(fd, true)
}

func epollLoop(ep int, mu *sync.Mutex, peer map[int32]int32) {
	runtime.LockOSThread()
	evs := make([]syscall.EpollEvent, 128)
	buf := make([]byte, 64<<10)
	for {
		// A raw system call keeps this thread's P while it waits (no
		// hand-off to sysmon and back); the timeout bounds how long a
		// stop-the-world of the garbage collector can wait for it.
		r0, _, e := syscall.RawSyscall6(syscall.SYS_EPOLL_WAIT, uintptr(ep), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 2, 0, 0)
		if e != 0 || r0 == 0 {
			continue // EINTR, timeout
		}
		n := int(r0)
		for _, ev := range evs[:n] {
			fd := ev.Fd
			mu.Lock()
			to, ok := peer[fd]
			mu.Unlock()
			if !ok {
				continue
			}
			r, err := syscall.Read(int(fd), buf)
			if err == syscall.EAGAIN {
				continue
			}
			if r <= 0 || writeAll(int(to), buf[:r]) != nil {
				mu.Lock()
				delete(peer, fd)
				delete(peer, to)
				mu.Unlock()
				syscall.Close(int(fd)) // closing removes it from the epoll set
				syscall.Close(int(to))
			}
		}
	}
}

// writeAll writes b to a non-blocking socket, waiting with poll(2) when
// its buffer is full (rare for a request/response protocol).
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EAGAIN {
			pfd := []pollFd{{fd: int32(fd), events: 0x4}} // POLLOUT
			if _, _, e := syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&pfd[0])), 1, 1000); e != 0 && e != syscall.EINTR {
				return e
			}
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

type pollFd struct {
	fd      int32
	events  int16
	revents int16
}
