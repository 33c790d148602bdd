package terminations

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// crashing returns the pod as the kubelet shows it after its n-th crash:
// lastState holds only that crash.
func crashing(uid string, n int, reason string, exit int32) *corev1.Pod {
	finished := t0.Add(time.Duration(n) * time.Minute)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "api-0", UID: types.UID(uid)},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name:         "api",
			RestartCount: int32(n),
			State:        corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ContainerID: fmt.Sprintf("containerd://%064x", n),
				Reason:      reason,
				ExitCode:    exit,
				StartedAt:   metav1.NewTime(finished.Add(-30 * time.Second)),
				FinishedAt:  metav1.NewTime(finished),
				Message:     fmt.Sprintf("crash %d", n),
			}},
		}}},
	}
}

func TestObserveDedupesAndBounds(t *testing.T) {
	s := New(Options{})
	// The informer delivers the same status many times (every update of
	// the pod); each crash must be recorded once.
	for n := 1; n <= 15; n++ {
		p := crashing("u1", n, "OOMKilled", 137)
		s.Observe(p)
		s.Observe(p)
		s.Observe(p.DeepCopy())
	}
	h := s.Pod("shop", "api-0")
	require.Len(t, h, 1)
	got := h[0].Terminations
	require.Len(t, got, PerContainer)
	assert.Equal(t, "crash 15", got[0].Message, "newest first")
	assert.Equal(t, "crash 6", got[PerContainer-1].Message, "oldest kept")
	for i := 1; i < len(got); i++ {
		assert.True(t, got[i-1].FinishedAt.After(got[i].FinishedAt))
	}
	assert.Equal(t, int32(9), got[0].Signal, "137 = 128 + SIGKILL")
	assert.Equal(t, "OOMKilled", got[0].Reason)

	// A crash older than every kept one (a late replay) is not added.
	s.Observe(crashing("u1", 2, "Error", 1))
	assert.Equal(t, "crash 6", s.Pod("shop", "api-0")[0].Terminations[PerContainer-1].Message)
}

func TestObserveCurrentAndLastStateOnce(t *testing.T) {
	s := New(Options{})
	p := crashing("u1", 1, "Error", 1)
	// The container ended again and the kubelet has not restarted it
	// yet: the current state is a termination too.
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ContainerID: "containerd://" + strings.Repeat("f", 64), Reason: "Error", ExitCode: 2,
		FinishedAt: metav1.NewTime(t0.Add(5 * time.Minute)),
	}}
	s.Observe(p)
	// After the restart, that termination moves to lastState.
	next := crashing("u1", 1, "Error", 1)
	next.Status.ContainerStatuses[0].LastTerminationState = p.Status.ContainerStatuses[0].State
	s.Observe(next)
	got := s.Pod("shop", "api-0")[0].Terminations
	require.Len(t, got, 2)
	assert.Equal(t, int32(2), got[0].ExitCode)
	assert.Equal(t, int32(1), got[1].ExitCode)
	assert.Zero(t, got[1].Signal, "exit code 1 carries no signal")
}

func TestNoContainerIDDedupesOnTimes(t *testing.T) {
	s := New(Options{})
	p := crashing("u1", 1, "ContainerStatusUnknown", 137)
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated.ContainerID = ""
	s.Observe(p)
	s.Observe(p.DeepCopy())
	assert.Len(t, s.Pod("shop", "api-0")[0].Terminations, 1)
}

func TestRecreatedPodStartsAfresh(t *testing.T) {
	s := New(Options{})
	s.Observe(crashing("u1", 1, "Error", 1))
	s.Observe(crashing("u2", 1, "OOMKilled", 137))
	got := s.Pod("shop", "api-0")[0].Terminations
	require.Len(t, got, 1)
	assert.Equal(t, "OOMKilled", got[0].Reason)
}

func TestDeletedPodsAreForgotten(t *testing.T) {
	c := &clock{t: t0}
	s := New(Options{ForgetAfter: 10 * time.Minute, Now: c.Now})
	h := s.Handler()
	h.OnAdd(crashing("u1", 1, "Error", 1), true)
	other := crashing("u9", 1, "Error", 1)
	other.Name = "web-0"
	h.OnUpdate(nil, other)
	require.Equal(t, 2, s.Len())

	h.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/api-0", Obj: crashing("u1", 1, "Error", 1)})
	c.Advance(5 * time.Minute)
	s.Observe(other)
	assert.NotNil(t, s.Pod("shop", "api-0"), "kept for a while after deletion")
	c.Advance(6 * time.Minute)
	s.Observe(other)
	assert.Nil(t, s.Pod("shop", "api-0"))
	assert.NotNil(t, s.Pod("shop", "web-0"))
}

func TestMaxPods(t *testing.T) {
	s := New(Options{MaxPods: 2})
	for i := range 3 {
		p := crashing(fmt.Sprint(i), 1, "Error", 1)
		p.Name = fmt.Sprint("p", i)
		s.Observe(p)
	}
	assert.Equal(t, 2, s.Len())
	assert.Equal(t, uint64(1), s.Refused())
}

func TestPodsWithoutTerminationsCostNothing(t *testing.T) {
	s := New(Options{})
	s.Observe(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "b"},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}})
	assert.Zero(t, s.Len())
}

func TestInitContainersFirst(t *testing.T) {
	s := New(Options{})
	p := crashing("u1", 1, "Error", 1)
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "zz-migrate", LastTerminationState: corev1.ContainerState{
		Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error", FinishedAt: metav1.NewTime(t0)}}}}
	s.Observe(p)
	h := s.Pod("shop", "api-0")
	require.Len(t, h, 2)
	assert.Equal(t, "zz-migrate", h[0].Container)
	assert.True(t, h[0].Init)
}

func TestMessageIsBounded(t *testing.T) {
	s := New(Options{})
	p := crashing("u1", 1, "Error", 1)
	p.Status.ContainerStatuses[0].LastTerminationState.Terminated.Message = strings.Repeat("é", 4096)
	s.Observe(p)
	msg := s.Pod("shop", "api-0")[0].Terminations[0].Message
	assert.LessOrEqual(t, len(msg), MaxMessage)
	assert.True(t, utf8.ValidString(msg))
	assert.True(t, strings.HasSuffix(msg, "…"))
}

func TestTruncate(t *testing.T) {
	assert.Equal(t, "abc", Truncate("abc", 3))
	assert.Equal(t, "a…", Truncate("abcdef", 4))
	assert.Equal(t, "", Truncate("abcdef", 2))
	assert.Equal(t, "…", Truncate("éé", 3))
}

func TestConcurrentObserveAndRead(t *testing.T) {
	s := New(Options{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= 50; n++ {
				s.Observe(crashing("u1", n+w, "Error", 1))
				_ = s.Pod("shop", "api-0")
			}
		}()
	}
	wg.Wait()
	assert.Len(t, s.Pod("shop", "api-0")[0].Terminations, PerContainer)
}
