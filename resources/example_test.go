package resources_test

import (
	"fmt"

	"github.com/apronhq/apron/resources"
)

// The example of the README: an agent's resources, a task's needs, what is
// left once the task runs.
func Example() {
	total, err := resources.Parse("cpus:4;mem:4096;disk:10000;ports:[31000-32000];cpus(analytics):2")
	if err != nil {
		panic(err)
	}
	task, _ := resources.Parse("cpus:0.5;mem:512;ports:[31000-31000]")
	if total.Contains(task) {
		left := total.Subtract(task)
		fmt.Println(left.CPUs(), left.Mem(), left.Ports())
	}
	fmt.Println(resources.MustParse("cpus:0.1").Add(resources.MustParse("cpus:0.2")).Subtract(resources.MustParse("cpus:0.3")).Empty())
	// Output:
	// 5.5 3584 [31001-32000]
	// true
}
