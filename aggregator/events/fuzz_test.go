package events

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var filterSeeds = []string{
	"",
	"node=n1&namespace=shop&pod=api-0&type=Warning&reason=BackOff&kind=Pod&name=api-0",
	"since=30m&limit=1000",
	"since=2026-03-01T12:00:00Z",
	"since=2026-03-01T12:00:00+25:00",
	"since=9999999h",
	"limit=-1",
	"limit=99999999999999999999",
	"after=abc-1",
	"after=-",
	"type=normal",
	"%zz",
	"a=b;c=d",
	"pod=%00&node=%ff",
}

// FuzzParseFilter checks that any query either parses into a filter within
// bounds or fails with a reason.
func FuzzParseFilter(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		fl, err := ParseFilter(raw, listParams, now)
		if err != nil {
			require.NotEmpty(t, err.Error())
			return
		}
		require.True(t, fl.Limit >= 0 && fl.Limit <= MaxLimit)
		for _, s := range []string{fl.Node, fl.Namespace, fl.Pod, fl.Type, fl.Reason, fl.ObjectKind, fl.ObjectName, fl.After} {
			require.LessOrEqual(t, len(s), maxField)
		}
	})
}

// FuzzListHandler sends any query to the list route of a populated store:
// the answer is 200 or 400, never 500 or a panic.
func FuzzListHandler(f *testing.F) {
	for _, s := range filterSeeds {
		f.Add(s)
	}
	s := NewStore(Options{})
	for _, p := range []string{"a", "b", "c"} {
		s.AddKube(kubeEvent(p, "shop", p, "BackOff", "Warning", 2, time.Now()))
	}
	f.Add("after=" + s.Latest())
	mux := http.NewServeMux()
	RegisterRoutes(mux, s, HTTPOptions{})
	f.Fuzz(func(t *testing.T, raw string) {
		req := httptest.NewRequest(http.MethodGet, RouteList, nil)
		req.URL.RawQuery = raw // as the server would receive it, unparsed
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		require.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, rec.Code, rec.Body.String())
	})
}
