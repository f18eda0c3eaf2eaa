package filestore

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"
)

// The active segment is written through a shared mapping of the file
// instead of a write(2) per event: an event copied into the mapping is in
// the page cache — what a write(2) gives too — so it survives a kill -9 of
// the gateway, and the maintainer's fsync makes it durable as before.
//
// Space is allocated ahead with fallocate, so the file ends in a
// zero-filled tail beyond the written data. JSON lines never contain a NUL
// byte (encoding escapes it), so every reader stops at the first NUL
// (lineReader), crash recovery cuts the zero tail off, and Close truncates
// the file to its data. A fault on the mapping (the file shortened under
// us, an I/O error reading a page in) is caught (SetPanicOnFault), fails
// the write, and the segment refuses every later write: fail closed.
const (
	segGrow    = 4 << 20  // file space allocated ahead, per extension
	segMapping = 64 << 20 // initial size of the mapping (address space only)
	segPwrite  = 4 << 10  // writes of this size or more go through pwrite(2)
)

var openSegFile = openMappedSeg

type mappedSeg struct {
	f      *os.File
	mem    []byte // the mapping; only mem[:alloc] is backed by the file
	size   int64  // bytes of data: the next write goes here
	alloc  int64  // file length (data + zero tail)
	broken error  // set by a fault: every later write fails
}

// openMappedSeg opens (creating) a segment for appending through a mapping.
// Its data ends at the file's last non-NUL byte (crash recovery has cut any
// zero tail off already; the scan is a safety net). Where the file system
// cannot map files, it falls back to a plain appending file.
func openMappedSeg(path string) (segFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	s := &mappedSeg{f: f, alloc: st.Size()}
	if err := s.remap(max(segMapping, roundPage(s.alloc+segGrow))); err != nil {
		f.Close()
		if errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EACCES) {
			return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		}
		return nil, fmt.Errorf("sessions: mapping %s: %w", path, err)
	}
	s.size = s.alloc
	err = guard(func() {
		for s.size > 0 && s.mem[s.size-1] == 0 {
			s.size--
		}
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func roundPage(n int64) int64 {
	p := int64(os.Getpagesize())
	return (n + p - 1) / p * p
}

// remap replaces the mapping by one of n bytes (address space; pages past
// the file's end are never touched).
func (s *mappedSeg) remap(n int64) error {
	if s.mem != nil {
		if err := syscall.Munmap(s.mem); err != nil {
			return err
		}
		s.mem = nil
	}
	m, err := syscall.Mmap(int(s.f.Fd()), 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return err
	}
	s.mem = m
	return nil
}

// reserve makes room for n more bytes: file space (fallocate, so that a
// full disk is an error here and not a fault later) and address space.
func (s *mappedSeg) reserve(n int) error {
	need := s.size + int64(n)
	if need <= s.alloc {
		return nil
	}
	alloc := roundPage(need + segGrow)
	err := syscall.Fallocate(int(s.f.Fd()), 0, s.alloc, alloc-s.alloc)
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		err = s.f.Truncate(alloc) // sparse: a full disk then faults, caught by guard
	}
	if err != nil {
		return err
	}
	s.alloc = alloc
	if alloc > int64(len(s.mem)) {
		if err := s.remap(max(2*int64(len(s.mem)), alloc)); err != nil {
			s.broken = err
			return err
		}
	}
	return nil
}

// guard runs fn, turning a fault on the mapping into ErrMapFault.
func guard(fn func()) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrMapFault, p)
		}
	}()
	fn()
	return nil
}

func (s *mappedSeg) Write(p []byte) (int, error) {
	if s.broken != nil {
		return 0, s.broken
	}
	if err := s.reserve(len(p)); err != nil {
		return 0, err
	}
	if len(p) >= segPwrite {
		// A large event (an insert of many rows): one pwrite(2) into the
		// allocated space costs less than a fault per page of the
		// mapping (BenchmarkSegmentWrite: 75 KiB 28 µs against 67 µs).
		// The page cache is one: readers and the mapping see the same
		// bytes.
		if _, err := s.f.WriteAt(p, s.size); err != nil {
			// A short write: zero the whole range (reserved above; the
			// count WriteAt reports after an error leaves out what an
			// earlier partial pwrite wrote), so that readers see the end
			// of the data where it was.
			if gerr := guard(func() { clear(s.mem[s.size : s.size+int64(len(p))]) }); gerr != nil {
				s.broken = gerr
			}
			return 0, err
		}
		s.size += int64(len(p))
		return len(p), nil
	}
	if err := guard(func() { copy(s.mem[s.size:], p) }); err != nil {
		s.broken = err
		return 0, err
	}
	s.size += int64(len(p))
	return len(p), nil
}

// Truncate cuts the data back to size (zeroing what was after it, so that
// readers see the end there). It never extends: a segment shorter than
// what the recorder wrote to it was changed behind its back.
func (s *mappedSeg) Truncate(size int64) error {
	if s.broken != nil {
		return s.broken
	}
	if size > s.size {
		return fmt.Errorf("sessions: segment holds %d bytes, %d were written to it", s.size, size)
	}
	if err := guard(func() { clear(s.mem[size:s.size]) }); err != nil {
		s.broken = err
		return err
	}
	s.size = size
	return nil
}

// Sync makes the data durable: fsync writes back the pages dirtied
// through the mapping. Safe concurrently with Write (it does not touch
// the mapping).
func (s *mappedSeg) Sync() error { return s.f.Sync() }

// Close unmaps, cuts the zero tail off and closes.
func (s *mappedSeg) Close() error {
	var first error
	if s.mem != nil {
		first = syscall.Munmap(s.mem)
		s.mem = nil
	}
	if s.broken == nil && s.alloc > s.size {
		if err := s.f.Truncate(s.size); err != nil && first == nil {
			first = err
		} else if err == nil {
			if err := s.f.Sync(); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := s.f.Close(); err != nil && first == nil {
		first = err
	}
	return first
}
