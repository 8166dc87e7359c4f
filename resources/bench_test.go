package resources

import "testing"

// agentResources is a typical agent: cpus, mem, disk and ports in 16
// fragments, as after a while of port allocations.
func agentResources() Resources {
	var ports []Range
	for i := range uint64(16) {
		ports = append(ports, Range{31000 + i*64, 31000 + i*64 + 31})
	}
	return New(NewScalar("cpus", 32), NewScalar("mem", 131072), NewScalar("disk", 1e6), NewRanges("ports", ports...))
}

func taskResources() Resources {
	return MustParse("cpus:0.5;mem:512;disk:1024;ports:[31000-31001]")
}

var sink Resources
var sinkBool bool

func BenchmarkAdd(b *testing.B) {
	agent, task := agentResources(), taskResources()
	b.ReportAllocs()
	for b.Loop() {
		sink = agent.Add(task)
	}
}

func BenchmarkSubtract(b *testing.B) {
	agent, task := agentResources(), taskResources()
	b.ReportAllocs()
	for b.Loop() {
		sink = agent.Subtract(task)
	}
}

func BenchmarkContains(b *testing.B) {
	agent, task := agentResources(), taskResources()
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = agent.Contains(task)
	}
}

func BenchmarkContainsAgent(b *testing.B) {
	agent := agentResources()
	other := agent.Clone()
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = agent.Contains(other)
	}
}

func BenchmarkEqual(b *testing.B) {
	agent := agentResources()
	other := agent.Clone()
	b.ReportAllocs()
	for b.Loop() {
		sinkBool = agent.Equal(other)
	}
}

func BenchmarkQuantities(b *testing.B) {
	agent := agentResources()
	b.ReportAllocs()
	for b.Loop() {
		_ = agent.Quantities()
	}
}

func BenchmarkParse(b *testing.B) {
	text := agentResources().String()
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = Parse(text)
	}
}

func BenchmarkAddSubtractInPlace(b *testing.B) {
	agent, task := agentResources(), MustParse("cpus:0.5;mem:512;disk:1024")
	b.ReportAllocs()
	for b.Loop() {
		agent.SubtractInPlace(task)
		agent.AddInPlace(task)
	}
}

// BenchmarkFromProtoDistinct converts a message with many distinct
// resources, as a hostile client could send; it must stay linear.
func BenchmarkFromProtoDistinct(b *testing.B) {
	var rs []Resource
	for i := range 10000 {
		rs = append(rs, NewScalar("r"+itoa(uint64(i)), 1))
	}
	ps := New(rs...).ToProto()
	b.ReportAllocs()
	for b.Loop() {
		sink, _ = FromProto(ps)
	}
}
