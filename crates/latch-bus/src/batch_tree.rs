//! The Merkle tree over a published batch of events, so that one signature
//! covers the batch and each message still verifies on its own.
//!
//! The relay signs the tree's root once per batch (`feed_signing::
//! batch_message`); each event message carries the signature, its batch's
//! first and last position and its inclusion proof (the sibling hashes from
//! its leaf up). A follower recomputes the root from the event it holds and
//! the proof, and checks the signature once per batch: further messages of
//! the batch cost a few SHA-256s each instead of an Ed25519 verification.
//!
//! The tree is RFC 9162's (Certificate Transparency v2): a leaf is
//! `SHA-256(0x00 ‖ leaf data)`, a node `SHA-256(0x01 ‖ left ‖ right)`, and
//! a tree of `n` leaves splits at the largest power of two below `n`.

use sha2::{Digest, Sha256};

/// A node or leaf hash.
pub type NodeHash = [u8; 32];

/// The most leaves a batch may have: a follower refuses a claimed batch
/// larger than this before doing any work on it.
pub const MAX_BATCH: u64 = 1 << 16;

/// The longest inclusion proof of a batch of at most `MAX_BATCH` leaves.
pub const MAX_PROOF: usize = 16;

pub fn leaf_hash(data: &[u8]) -> NodeHash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(data);
    hasher.finalize().into()
}

fn node_hash(left: &NodeHash, right: &NodeHash) -> NodeHash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the tree over `leaves` and every leaf's inclusion proof,
/// in the leaves' order. `leaves` must not be empty.
pub fn root_and_proofs(leaves: &[NodeHash]) -> (NodeHash, Vec<Vec<NodeHash>>) {
    assert!(!leaves.is_empty(), "a batch has at least one event");
    let mut proofs = vec![Vec::new(); leaves.len()];
    let root = build(leaves, &mut proofs);
    (root, proofs)
}

fn build(leaves: &[NodeHash], proofs: &mut [Vec<NodeHash>]) -> NodeHash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let split = leaves.len().next_power_of_two() / 2;
    let (left_proofs, right_proofs) = proofs.split_at_mut(split);
    let left = build(&leaves[..split], left_proofs);
    let right = build(&leaves[split..], right_proofs);
    for proof in left_proofs {
        proof.push(right);
    }
    for proof in right_proofs {
        proof.push(left);
    }
    node_hash(&left, &right)
}

/// The root that `leaf`, at `index` of a tree of `size` leaves, proves with
/// `proof` (RFC 9162, 2.1.3.2); `None` when the proof cannot belong to such
/// a tree.
pub fn root_from_proof(
    index: u64,
    size: u64,
    leaf: NodeHash,
    proof: &[NodeHash],
) -> Option<NodeHash> {
    if index >= size {
        return None;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut root = leaf;
    for sibling in proof {
        if snode == 0 {
            return None;
        }
        if fnode & 1 == 1 || fnode == snode {
            root = node_hash(sibling, &root);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            root = node_hash(&root, sibling);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    (snode == 0).then_some(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<NodeHash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    /// RFC 9162's definition, written the slow and obvious way.
    fn reference_root(leaves: &[NodeHash]) -> NodeHash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let split = leaves.len().next_power_of_two() / 2;
        node_hash(
            &reference_root(&leaves[..split]),
            &reference_root(&leaves[split..]),
        )
    }

    #[test]
    fn every_leaf_proves_the_root_of_every_tree_size() {
        for n in 1..=70 {
            let leaves = leaves(n);
            let (root, proofs) = root_and_proofs(&leaves);
            assert_eq!(root, reference_root(&leaves), "size {n}");
            for (i, proof) in proofs.iter().enumerate() {
                assert_eq!(
                    root_from_proof(i as u64, n as u64, leaves[i], proof),
                    Some(root),
                    "leaf {i} of {n}"
                );
            }
        }
    }

    #[test]
    fn a_proof_proves_nothing_else() {
        let leaves = leaves(13);
        let (root, proofs) = root_and_proofs(&leaves);
        // Another leaf, another index, a cut or padded proof. (The size
        // is bound by the signature over first and last position, not by
        // the root: a proof may fit trees of neighbouring sizes.)
        assert_ne!(root_from_proof(4, 13, leaves[5], &proofs[4]), Some(root));
        assert_ne!(root_from_proof(5, 13, leaves[4], &proofs[4]), Some(root));
        assert_ne!(root_from_proof(4, 13, leaves[4], &proofs[4][1..]), Some(root));
        let mut padded = proofs[4].clone();
        padded.push(leaves[0]);
        assert_eq!(root_from_proof(4, 13, leaves[4], &padded), None);
        assert_eq!(root_from_proof(13, 13, leaves[4], &proofs[4]), None);
        assert!(proofs.iter().all(|p| p.len() <= MAX_PROOF));
    }
}
