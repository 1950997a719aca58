package bridge

import "sort"

// RequestPaths lists the paths of the request API's route table, sorted, for the integration tests (which
// check that every path refuses bad payloads).
func RequestPaths() []string {
	routes := (&Bridge{}).apiRoutes()
	paths := make([]string, 0, len(routes))
	for p := range routes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}
