package collector

import (
	"errors"
	"fmt"
)

// Small /proc parsers for the sources gopsutil has no reader for (the
// cgroup source's pressure and statistics files); they work on bytes and
// allocate nothing.

// nextProcLine splits off the first line of data.
func nextProcLine(data []byte) (line, rest []byte) {
	for i, c := range data {
		if c == '\n' {
			return data[:i], data[i+1:]
		}
	}
	return data, nil
}

// nextProcField splits off the first whitespace-separated field of line.
func nextProcField(line []byte) (field, rest []byte) {
	i := 0
	for i < len(line) && isProcSpace(line[i]) {
		i++
	}
	j := i
	for j < len(line) && !isProcSpace(line[j]) {
		j++
	}
	return line[i:j], line[j:]
}

func isProcSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// parseProcUint parses a decimal counter without converting it to a string.
func parseProcUint(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errors.New("empty number")
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("invalid number %q", b)
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, fmt.Errorf("number %q overflows", b)
		}
		n = n*10 + d
	}
	return n, nil
}
