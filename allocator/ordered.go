package allocator

import "slices"

// blockSize bounds the blocks of an ordered list.
const blockSize = 64

// ordered is a list of framework roles or roles in ascending (key, name)
// order, cut into blocks of at most blockSize elements. Moving an element
// whose key changed costs O(log n + blockSize) rather than a copy of
// every element it passes: in a cycle over thousands of agents, each offer
// moves a framework past most of its role's others.
//
// With SorterRandom the order is not kept: elements go anywhere and swap
// places, and removal falls back to a scan.
type ordered[T keyed] struct {
	blocks [][]T
	n      int
}

func (o *ordered[T]) len() int { return o.n }

// locate returns the block and offset of the first element not before x
// (or where x would go at the end).
func (o *ordered[T]) locate(x T) (int, int) {
	lo, hi := 0, len(o.blocks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if b := o.blocks[m]; less(b[len(b)-1], x) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(o.blocks) {
		if lo == 0 {
			return 0, 0
		}
		return lo - 1, len(o.blocks[lo-1])
	}
	return lo, search(o.blocks[lo], x)
}

// find returns the position of x, by binary search when the list is
// ordered by the keys its elements hold, else by scanning; ok is false
// when x is not there.
func (o *ordered[T]) find(x T) (bi, i int, ok bool) {
	bi, i = o.locate(x)
	if bi < len(o.blocks) && i < len(o.blocks[bi]) && o.blocks[bi][i] == x {
		return bi, i, true
	}
	for bi, b := range o.blocks {
		if i := slices.Index(b, x); i >= 0 {
			return bi, i, true
		}
	}
	return 0, 0, false
}

func (o *ordered[T]) insert(x T) {
	if len(o.blocks) == 0 {
		o.blocks = append(o.blocks, append(make([]T, 0, 4), x))
		o.n++
		return
	}
	bi, i := o.locate(x)
	b := slices.Insert(o.blocks[bi], i, x)
	if len(b) > blockSize {
		half := len(b) / 2
		next := append(make([]T, 0, blockSize), b[half:]...)
		clear(b[half:])
		b = b[:half]
		o.blocks = slices.Insert(o.blocks, bi+1, next)
	}
	o.blocks[bi] = b
	o.n++
}

func (o *ordered[T]) remove(x T) {
	bi, i, ok := o.find(x)
	if !ok {
		return
	}
	b := slices.Delete(o.blocks[bi], i, i+1)
	o.n--
	switch {
	case len(b) == 0:
		o.blocks = slices.Delete(o.blocks, bi, bi+1)
	case len(b) < blockSize/4 && bi+1 < len(o.blocks) && len(b)+len(o.blocks[bi+1]) <= blockSize:
		// Merge a small block into its successor, so that blocks do not
		// crumble into many tiny ones.
		o.blocks[bi] = append(b, o.blocks[bi+1]...)
		o.blocks = slices.Delete(o.blocks, bi+1, bi+2)
	default:
		o.blocks[bi] = b
	}
}

// move repositions x after setKey changed its key: x is found by its old
// key, then inserted by its new one.
func (o *ordered[T]) move(x T, setKey func()) {
	o.remove(x)
	setKey()
	o.insert(x)
}

// sort re-sorts the whole list, after every key changed.
func (o *ordered[T]) sort() {
	all := make([]T, 0, o.n)
	for _, b := range o.blocks {
		all = append(all, b...)
	}
	slices.SortFunc(all, cmpKeyed[T])
	o.blocks = o.blocks[:0]
	for len(all) > 0 {
		k := min(len(all), blockSize)
		o.blocks = append(o.blocks, all[:k:k])
		all = all[k:]
	}
}

// at returns a pointer to the i-th element: O(blocks).
func (o *ordered[T]) at(i int) *T {
	for _, b := range o.blocks {
		if i < len(b) {
			return &b[i]
		}
		i -= len(b)
	}
	return nil
}

// slice returns the elements in order, in a new slice.
func (o *ordered[T]) slice() []T {
	out := make([]T, 0, o.n)
	for _, b := range o.blocks {
		out = append(out, b...)
	}
	return out
}

// contains reports whether x is in the list.
func (o *ordered[T]) contains(x T) bool {
	_, _, ok := o.find(x)
	return ok
}

// each calls f on every element in order until it returns false.
func (o *ordered[T]) each(f func(T) bool) {
	for _, b := range o.blocks {
		for _, x := range b {
			if !f(x) {
				return
			}
		}
	}
}
