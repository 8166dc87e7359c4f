package resources_test

import (
	"fmt"

	"github.com/apronhq/apron/resources"
)

func Example() {
	agent := resources.MustParse("cpus:8;mem:16384;ports:[31000-32000]")
	task := resources.MustParse("cpus:0.5;mem:512;ports:[31000-31000]")
	if agent.Contains(task) {
		left := agent.Subtract(task)
		fmt.Println(left)
	}
	// Output: cpus:7.5;mem:15872;ports:[31001-32000]
}

func ExampleParse() {
	rs, err := resources.Parse("cpus:4;cpus(analytics):2;mem:4096;zones:{b,a}")
	if err != nil {
		panic(err)
	}
	fmt.Println(rs.CPUs(), rs.Mem())
	fmt.Println(rs.ReservedTo("analytics"))
	fmt.Println(rs.Unreserved())
	// Output:
	// 6 4096
	// cpus(analytics):2
	// cpus:4;mem:4096;zones:{a,b}
}

func ExampleScalarOf() {
	s := resources.ScalarOf(0.1) + resources.ScalarOf(0.2) - resources.ScalarOf(0.3)
	fmt.Println(s == 0, resources.ScalarOf(1.125))
	// Output: true 1.125
}

func ExampleResources_TrySubtract() {
	offer := resources.MustParse("cpus:1;mem:1024")
	_, err := offer.TrySubtract(resources.MustParse("cpus:2"))
	fmt.Println(err)
	// Output: insufficient resources: missing cpus:1
}
