package authn

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestLogLimiter(t *testing.T) {
	l := NewLogLimiter(time.Hour)
	n, ok := l.Allow("a")
	assert.True(t, ok)
	assert.Zero(t, n)
	for range 3 {
		_, ok = l.Allow("a")
		assert.False(t, ok)
	}
	_, ok = l.Allow("b")
	assert.True(t, ok, "keys are independent")

	l.every = 0
	n, ok = l.Allow("a")
	assert.True(t, ok)
	assert.Equal(t, 3, n, "the held-back lines are reported with the next one")
}
