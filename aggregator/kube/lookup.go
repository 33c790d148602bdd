package kube

import (
	corev1 "k8s.io/api/core/v1"
)

// Pod returns the cached Pod, nil when it is not in the watched
// namespaces' caches. The object is the cache's own: callers must not
// modify it.
func (c *Cluster) Pod(namespace, name string) *corev1.Pod {
	c.mu.Lock()
	listers := c.podListers
	c.mu.Unlock()
	for _, l := range listers {
		if p, err := l.Pods(namespace).Get(name); err == nil {
			return p
		}
	}
	return nil
}

// Node returns the cached Node, nil when unknown. The object is the
// cache's own: callers must not modify it.
func (c *Cluster) Node(name string) *corev1.Node {
	c.mu.Lock()
	l := c.nodeLister
	c.mu.Unlock()
	if l == nil {
		return nil
	}
	n, err := l.Get(name)
	if err != nil {
		return nil
	}
	return n
}
