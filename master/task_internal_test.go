package master

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCompletedTasksTrimmedInBatches(t *testing.T) {
	const limit = 4
	fw := &framework{id: "fw", tasks: map[string]*task{}}
	c := &core{cfg: Config{MaxCompletedTasksPerFramework: limit}, frameworks: map[string]*framework{"fw": fw}}
	a := &agent{id: "a", tasks: map[string]*task{}}
	ids := func(ts []*task) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.id)
		}
		return out
	}
	for i := range 3 * limit {
		tk := &task{id: fmt.Sprintf("t%02d", i), framework: "fw", agent: "a"}
		fw.tasks[tk.id], a.tasks[tk.key()] = tk, tk
		c.forgetTask(a, tk)
		assert.NotContains(t, fw.tasks, tk.id)
		assert.LessOrEqual(t, len(fw.completed), 2*limit)
		// Readers see the newest limit tasks, oldest first.
		var want []string
		for j := max(0, i+1-limit); j <= i; j++ {
			want = append(want, fmt.Sprintf("t%02d", j))
		}
		require.Equal(t, want, ids(fw.recentCompleted(limit)), "after task %d", i)
	}
}
