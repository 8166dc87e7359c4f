// Package resources is Apron's resource model: the CPUs, memory, disk,
// ports and other resources that agents provide, masters offer and tasks
// consume, with the arithmetic, parsing and validation rules of Apache
// Mesos.
//
// A Resource is one named amount with its attributes: its value is a
// Scalar (exact fixed point with three decimals, as Mesos rounds scalars),
// Ranges of integers (ports) or a Set of strings; it may be reserved to a
// role through a stack of reservations (static from the agent's
// configuration, or dynamic, each refinement to a sub-role such as
// eng/backend), be a persistent volume or other disk, be revocable or
// shared, and carry the role it is allocated to. Resources is a normalized
// collection: amounts of the same kind are merged, so "cpus:1" plus
// "cpus:2" is "cpus:3", while exclusive resources (each copy of a shared
// volume, each persistent volume, each MOUNT disk) stay separate entries.
// Add, Subtract and Contains follow Mesos's rules, including that a
// subtraction never goes below zero. Operations return new values and never
// modify their inputs (AddInPlace and SubtractInPlace, for an allocator's own
// accumulators, are the named exceptions), so Resources can be shared freely
// between goroutines that only read them.
//
// Resources come from Mesos's text form (as in an agent's --resources
// flag), its JSON form, or mesos.v1 Resource messages (FromProto), and go
// back the same ways (String, ToProto):
//
//	agent := resources.MustParse("cpus:8;mem:16384;ports:[31000-32000]")
//	task := resources.MustParse("cpus:0.5;mem:512;ports:[31000-31000]")
//	if agent.Contains(task) {
//		left := agent.Subtract(task)
//		fmt.Println(left) // cpus:7.5;mem:15872;ports:[31001-32000]
//	}
//
// Totals for schedulers and allocators are one call away: CPUs, Mem, Disk,
// GPUs, Ports, ScalarOf and Quantities.
package resources
