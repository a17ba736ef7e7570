package checkpoint

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

var ranges = &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// Tree is a log's Merkle tree as far as it has been read, held as its frontier (the compact range
// [0, size)): at most 64 hashes however long the log.
type Tree struct{ rng *compact.Range }

// NewTree is the empty tree.
func NewTree() *Tree { return &Tree{rng: ranges.NewEmptyRange(0)} }

// TreeFromFrontier is the tree of size whose frontier is hashes (see Frontier).
func TreeFromFrontier(size uint64, hashes [][]byte) (*Tree, error) {
	rng, err := ranges.NewRange(0, size, hashes)
	if err != nil {
		return nil, fmt.Errorf("frontier of a tree of %d leaves: %w", size, err)
	}
	return &Tree{rng: rng}, nil
}

// Append adds the next leaf, given by its leaf hash (LeafHash).
func (t *Tree) Append(leafHash []byte) {
	// Append fails only for a range that does not start at 0, which a Tree never is.
	_ = t.rng.Append(leafHash, nil)
}

// Size is the number of leaves.
func (t *Tree) Size() uint64 { return t.rng.End() }

// Root is the RFC 6962 root hash (the hash of the empty string for no leaves).
func (t *Tree) Root() []byte {
	if t.rng.End() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	root, _ := t.rng.GetRootHash(nil)
	return root
}

// Frontier is the tree's compact range, the hashes of the perfect subtrees that cover it from the left.
func (t *Tree) Frontier() [][]byte {
	return append([][]byte(nil), t.rng.Hashes()...)
}

// Clone returns an independent copy.
func (t *Tree) Clone() *Tree {
	c, _ := TreeFromFrontier(t.Size(), t.Frontier())
	return c
}

// Span is what is known of a tree to prove things about it: its frontier at Base and the hashes of
// the leaves from Base on. A Span from 0 with every leaf proves inclusion of any of them; the span
// between two checkpoints proves the later one consistent with the earlier.
type Span struct {
	Base     uint64
	Frontier [][]byte
	Leaves   [][]byte
	known    map[compact.NodeID][]byte
}

// ErrUnknownNode means a proof needs a node the span cannot compute.
var ErrUnknownNode = errors.New("the proof needs a tree node this span does not hold")

// End is the size of the tree the span reaches.
func (s *Span) End() uint64 { return s.Base + uint64(len(s.Leaves)) }

// node returns the hash of the perfect subtree id, from the frontier and the leaves.
func (s *Span) node(id compact.NodeID) ([]byte, error) {
	if s.known == nil {
		s.known = map[compact.NodeID][]byte{}
		for i, fid := range compact.RangeNodes(0, s.Base, nil) {
			s.known[fid] = s.Frontier[i]
		}
	}
	if h, ok := s.known[id]; ok {
		return h, nil
	}
	begin, end := id.Coverage()
	switch {
	case end > s.End():
		return nil, fmt.Errorf("%w: leaves %d to %d, the span ends at %d", ErrUnknownNode, begin, end, s.End())
	case begin >= s.Base:
		// Entirely in the leaves: fold them, without remembering every inner node on the way.
		rng := ranges.NewEmptyRange(begin)
		for _, h := range s.Leaves[begin-s.Base : end-s.Base] {
			_ = rng.Append(h, nil)
		}
		// A perfect subtree's compact range is that one node.
		return rng.Hashes()[0], nil
	case id.Level == 0:
		return nil, fmt.Errorf("%w: leaf %d lies inside a frontier node", ErrUnknownNode, begin)
	}
	// Across the base, or a union of frontier nodes: from the two children.
	l, err := s.node(compact.NewNodeID(id.Level-1, id.Index*2))
	if err != nil {
		return nil, err
	}
	r, err := s.node(compact.NewNodeID(id.Level-1, id.Index*2+1))
	if err != nil {
		return nil, err
	}
	return rfc6962.DefaultHasher.HashChildren(l, r), nil
}

// resolve computes the proof made of nodes, remembering each node it computes for the next proof.
func (s *Span) resolve(nodes proof.Nodes) ([][]byte, error) {
	hashes := make([][]byte, len(nodes.IDs))
	for i, id := range nodes.IDs {
		h, err := s.node(id)
		if err != nil {
			return nil, err
		}
		s.known[id] = h
		hashes[i] = h
	}
	return nodes.Rehash(hashes, rfc6962.DefaultHasher.HashChildren)
}

// InclusionProof proves that leaf index is in the tree of size leaves.
func (s *Span) InclusionProof(index, size uint64) ([][]byte, error) {
	nodes, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, err
	}
	return s.resolve(nodes)
}

// ConsistencyProof proves that the tree of size1 leaves is a prefix of the tree of size2.
func (s *Span) ConsistencyProof(size1, size2 uint64) ([][]byte, error) {
	nodes, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, err
	}
	return s.resolve(nodes)
}

// VerifyInclusion checks that leafHash is leaf index of the tree of size leaves with root.
func VerifyInclusion(index, size uint64, leafHash []byte, p [][]byte, root []byte) error {
	return proof.VerifyInclusion(rfc6962.DefaultHasher, index, size, leafHash, p, root)
}

// VerifyConsistency checks that the tree of size1 leaves with root1 is a prefix of the tree of size2
// leaves with root2. Equal sizes need equal roots and an empty proof.
func VerifyConsistency(size1, size2 uint64, p [][]byte, root1, root2 []byte) error {
	return proof.VerifyConsistency(rfc6962.DefaultHasher, size1, size2, p, root1, root2)
}

// Follow checks records of the checkpoint stream in order and keeps the tree they describe: each
// record's leaves, appended to the tree so far, must hash to its signed root, and its frontier must be
// the tree's. Records whose size does not grow the tree are checked the same way (no leaves).
type Follow struct {
	tree *Tree
}

// NewFollow starts at the empty tree.
func NewFollow() *Follow { return &Follow{tree: NewTree()} }

// Tree is the tree as the records so far describe it.
func (f *Follow) Tree() *Tree { return f.tree }

// Add checks the next record, whose checkpoint c was opened already, and extends the tree. A record
// that does not continue the tree (wrong size, leaves or frontier that do not hash to its root) is an
// error and leaves the tree unchanged.
func (f *Follow) Add(c Checkpoint, rec Record) error {
	if c.Size != f.tree.Size()+uint64(len(rec.Leaves)) {
		return fmt.Errorf("checkpoint of size %d adds %d leaves to a tree of %d", c.Size, len(rec.Leaves), f.tree.Size())
	}
	next := f.tree.Clone()
	for _, h := range rec.Leaves {
		if len(h) != rfc6962.DefaultHasher.Size() {
			return errors.New("a leaf hash is not 32 bytes")
		}
		next.Append(h)
	}
	if !bytes.Equal(next.Root(), c.Root) {
		return fmt.Errorf("the leaves of checkpoint %d do not hash to its signed root", c.Size)
	}
	front := next.Frontier()
	if len(front) != len(rec.Frontier) {
		return fmt.Errorf("the frontier of checkpoint %d is not the tree's", c.Size)
	}
	for i := range front {
		if !bytes.Equal(front[i], rec.Frontier[i]) {
			return fmt.Errorf("the frontier of checkpoint %d is not the tree's", c.Size)
		}
	}
	f.tree = next
	return nil
}
