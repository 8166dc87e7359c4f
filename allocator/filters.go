package allocator

import (
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/apronhq/apron/resources"
)

// Refusal filters are indexed twice, so that each of the three things done
// with them is cheap:
//
//   - a cycle asks, for every framework it considers on an agent, whether
//     a filter of that framework role covers what the agent has free. Each
//     agent keeps one bit per framework role with filters there (the
//     frameworkRole's idx), so the usual answer, "no filter here", costs a
//     bit test. When there are filters, the agent usually holds them all
//     for one and the same refused set (frameworks declining whole offers):
//     the agent keeps that set once, interned, and whether its free
//     resources still fit in it, so the answer is again a bit test;
//   - Revive drops the framework role's filters: they are kept by the
//     framework role too (frameworkRole.filters, by agent), so a revive
//     costs O(its filters), not a scan of the cluster;
//   - RemoveAgent drops the filters on the agent, found through its bits.
//
// Filters expire lazily: when a check meets one, and when a cycle meets an
// agent whose earliest filter has expired.

// filter is a refused-offer filter: free resources of one agent a framework
// refused for one role, until expires.
type filter struct {
	refused resources.Resources // unallocated; never modified (may be the agent's interned set)
	expires stamp
}

// stamp is an instant in nanoseconds since 1970, clamped to what an int64
// holds: a cluster keeps millions of filters, and a stamp takes 8 bytes
// where a time.Time takes 24.
type stamp int64

// never is the stamp after every other.
const never = stamp(math.MaxInt64)

var minStamp, maxStamp = time.Unix(0, math.MinInt64), time.Unix(0, math.MaxInt64)

func stampOf(t time.Time) stamp {
	switch {
	case t.Before(minStamp):
		return math.MinInt64
	case t.After(maxStamp):
		return never
	}
	return stamp(t.UnixNano())
}

// filterMap holds a framework role's filters by agent: the first one in
// the map's own slots (nearly always the only one: a new filter replaces
// those it covers), the others aside. A cluster may keep millions.
type filterMap struct {
	first map[*agent]filter
	more  map[*agent][]filter
}

func (m *filterMap) len() int { return len(m.first) }

// get appends the filters on ag to buf.
func (m *filterMap) get(ag *agent, buf []filter) []filter {
	f, ok := m.first[ag]
	if !ok {
		return buf
	}
	return append(append(buf, f), m.more[ag]...)
}

// put makes fs the filters on ag.
func (m *filterMap) put(ag *agent, fs []filter) {
	if len(fs) == 0 {
		delete(m.first, ag)
		delete(m.more, ag)
		return
	}
	if m.first == nil {
		m.first = map[*agent]filter{}
	}
	m.first[ag] = fs[0]
	switch {
	case len(fs) > 1 && m.more == nil:
		m.more = map[*agent][]filter{ag: slices.Clone(fs[1:])}
	case len(fs) > 1:
		m.more[ag] = slices.Clone(fs[1:])
	default:
		delete(m.more, ag)
	}
}

// bitset is a set of framework role indexes.
type bitset []uint64

func (b bitset) has(idx int) bool {
	w := idx >> 6
	return w < len(b) && b[w]&(1<<(idx&63)) != 0
}

func (b *bitset) set(idx int) {
	w := idx >> 6
	if w >= len(*b) {
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	(*b)[w] |= 1 << (idx & 63)
}

func (b bitset) unset(idx int) {
	if w := idx >> 6; w < len(b) {
		b[w] &^= 1 << (idx & 63)
	}
}

// agentFilters indexes the filters on one agent.
type agentFilters struct {
	bits bitset // bit i is set when the framework role of idx i has filters here
	// n counts the filters here, nref those whose refused set is ref.
	n, nref int
	ref     resources.Resources
	// earliest is no later than the expiry of every filter here.
	earliest stamp
	// fitVersion is the agent version at which fits (available ⊆ ref) was
	// computed; 0 when unknown.
	fitVersion uint64
	fits       bool
	// nextSweep is when sweepFilters may next look at every filter here.
	nextSweep stamp
}

// sweepInterval spaces the sweeps of an agent's filters: expired filters
// are otherwise dropped when a check meets them, so a sweep is only
// needed to let the interned fast path work again (allRefusedFit) and to
// free the memory of filters nobody checks.
const sweepInterval = stamp(10 * time.Second)

// same reports whether a and b are the same slice (not merely equal).
func same(a, b resources.Resources) bool {
	return len(a) > 0 && len(a) == len(b) && &a[0] == &b[0]
}

// allRefusedFit reports whether every filter on ag is running and covers
// whatever ag has free (they all refused the interned set, and what is
// free fits in it): then a framework role is filtered there exactly when
// its bit is set.
func (d *DRF) allRefusedFit(ag *agent) bool {
	af := &ag.filters
	return af.n > 0 && af.nref == af.n && d.nowStamp < af.earliest && fitsRef(ag)
}

// fitsRef reports whether what is free on ag fits in its interned refused
// set, so that every filter holding that set covers anything ag can offer.
func fitsRef(ag *agent) bool {
	af := &ag.filters
	if af.fitVersion != ag.version {
		af.fitVersion = ag.version
		af.fits = af.ref.Contains(ag.available)
	}
	return af.fits
}

// addFilter records that fr refused refused (unallocated) on ag until
// expires, dropping the filters of fr there it subsumes and those expired.
// It returns the refused set the filter keeps: refused itself, or the
// agent's interned set when equal.
func (d *DRF) addFilter(fr *frameworkRole, ag *agent, refused resources.Resources, expires, now stamp) resources.Resources {
	af := &ag.filters
	fs := fr.filters.get(ag, d.fbuf[:0])
	kept := fs[:0]
	for _, o := range fs {
		if now >= o.expires || (o.expires <= expires && refused.Contains(o.refused)) {
			af.forget(o)
			continue
		}
		kept = append(kept, o)
	}
	switch {
	case af.nref > 0 && af.ref.Equal(refused):
		refused = af.ref // interned
	case af.nref == 0:
		af.ref, af.fitVersion = refused, 0
	}
	if af.n == 0 || expires < af.earliest {
		af.earliest = expires
	}
	af.n++
	if same(refused, af.ref) {
		af.nref++
	}
	d.fbuf = append(kept, filter{refused: refused, expires: expires})
	fr.filters.put(ag, d.fbuf)
	clear(d.fbuf)
	af.bits.set(fr.idx)
	return refused
}

// forget uncounts a filter removed from the agent.
func (af *agentFilters) forget(f filter) {
	af.n--
	if same(f.refused, af.ref) {
		af.nref--
	}
	if af.nref == 0 {
		af.ref, af.fitVersion = nil, 0
	}
}

// filtered reports whether a filter of fr still running at d.now covers
// cand (part of what is free on ag) and notes its expiry for the cycle's
// idle bookkeeping; it drops the expired filters it meets.
func (d *DRF) filtered(fr *frameworkRole, ag *agent, cand resources.Resources) bool {
	af := &ag.filters
	if !af.bits.has(fr.idx) {
		return false
	}
	if d.allRefusedFit(ag) {
		d.noteExpiry(af.earliest)
		return true
	}
	fs := fr.filters.get(ag, d.fbuf[:0])
	hit := false
	kept := fs[:0]
	for _, f := range fs {
		if d.nowStamp >= f.expires {
			af.forget(f)
			continue
		}
		kept = append(kept, f)
		if !hit && ((same(f.refused, af.ref) && fitsRef(ag)) || f.refused.Contains(cand)) {
			hit = true
			d.noteExpiry(f.expires)
		}
	}
	if len(kept) < len(fs) {
		fr.filters.put(ag, kept)
		if len(kept) == 0 {
			af.bits.unset(fr.idx)
		}
	}
	d.fbuf = fs
	clear(d.fbuf)
	return hit
}

// dropFilters drops every filter of fr: O(its filters).
func (d *DRF) dropFilters(fr *frameworkRole) {
	for ag, f := range fr.filters.first {
		ag.filters.forget(f)
		for _, f := range fr.filters.more[ag] {
			ag.filters.forget(f)
		}
		ag.filters.bits.unset(fr.idx)
	}
	fr.filters = filterMap{}
}

// dropAgentFilters drops every filter on ag, which is going away.
func (d *DRF) dropAgentFilters(ag *agent) {
	for w, word := range ag.filters.bits {
		for ; word != 0; word &= word - 1 {
			idx := w<<6 | bits.TrailingZeros64(word)
			d.frs[idx].filters.put(ag, nil)
		}
	}
	ag.filters = agentFilters{}
}

// sweepFilters drops the expired filters on ag and recomputes the earliest
// expiry of the others, once the earliest has passed, no more often than
// every sweepInterval.
func (d *DRF) sweepFilters(ag *agent) {
	af := &ag.filters
	if af.n == 0 || d.nowStamp < af.earliest || d.nowStamp < af.nextSweep {
		return
	}
	af.nextSweep = d.nowStamp + sweepInterval
	earliest := never
	for w, word := range af.bits {
		for ; word != 0; word &= word - 1 {
			idx := w<<6 | bits.TrailingZeros64(word)
			fr := d.frs[idx]
			fs := fr.filters.get(ag, d.fbuf[:0])
			kept := fs[:0]
			for _, f := range fs {
				if d.nowStamp >= f.expires {
					af.forget(f)
					continue
				}
				earliest = min(earliest, f.expires)
				kept = append(kept, f)
			}
			if len(kept) < len(fs) {
				fr.filters.put(ag, kept)
				if len(kept) == 0 {
					af.bits.unset(idx)
				}
			}
			d.fbuf = fs
			clear(d.fbuf)
		}
	}
	af.earliest = earliest
}
