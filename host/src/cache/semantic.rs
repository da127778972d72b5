//! The semantic cache's index: for each space (one protocol, model and partition, so a
//! tenant's question only ever meets its own), the embeddings of the prompts whose
//! answers were kept, each pointing at the exact-match key of its answer. A lookup
//! takes the nearest neighbour by cosine similarity (HNSW, `hnsw_rs`), and the caller
//! serves that key's entry when the similarity clears the alias's threshold.
//!
//! HNSW has no deletion: an entry that expired or was evicted stays in the index and
//! its lookup is a miss at the store. The index is bounded by a number of points across
//! every space; past it, it starts over empty (said in the log), which costs only
//! semantic hits until it fills again.

use std::{collections::HashMap, sync::Mutex};

use hnsw_rs::prelude::{DistCosine, Hnsw};

/// Links per node and construction breadth: the values the HNSW paper and `hnsw_rs`'s
/// examples use for recall near 1 at this scale.
const MAX_CONNECTIONS: usize = 16;
const EF_CONSTRUCTION: usize = 200;
const EF_SEARCH: usize = 64;
const MAX_LAYERS: usize = 16;

/// Every space's index, bounded by a number of points.
pub struct SemanticIndex {
    max_points: usize,
    inner: Mutex<Spaces>,
}

#[derive(Default)]
struct Spaces {
    spaces: HashMap<String, Space>,
    points: usize,
}

struct Space {
    hnsw: Hnsw<'static, f32, DistCosine>,
    /// The exact-match key of each point, by its id.
    keys: Vec<String>,
    dimensions: usize,
}

impl SemanticIndex {
    /// An empty index holding at most `max_points` embeddings.
    pub fn new(max_points: usize) -> SemanticIndex {
        SemanticIndex {
            max_points: max_points.max(1),
            inner: Mutex::new(Spaces::default()),
        }
    }

    /// The key of the prompt in `space` nearest to `vector`, with its cosine
    /// similarity; `None` in an empty space or for a vector of other dimensions.
    pub fn nearest(&self, space: &str, vector: &[f32]) -> Option<(String, f32)> {
        let spaces = self.inner.lock().expect("semantic index lock");
        let space = spaces.spaces.get(space)?;
        if vector.len() != space.dimensions || !usable(vector) {
            return None;
        }
        let best = space.hnsw.search(vector, 1, EF_SEARCH).into_iter().next()?;
        let key = space.keys.get(best.d_id)?.clone();
        Some((key, 1.0 - best.distance))
    }

    /// Adds `vector` to `space`, pointing at the answer kept under `key`.
    pub fn insert(&self, space: &str, vector: &[f32], key: String) {
        if !usable(vector) {
            return;
        }
        let mut spaces = self.inner.lock().expect("semantic index lock");
        if spaces.points >= self.max_points {
            tracing::info!(
                points = spaces.points,
                "semantic cache index full (cache.semantic_max_entries): starting over empty"
            );
            *spaces = Spaces::default();
        }
        let max_points = self.max_points;
        let entry = spaces
            .spaces
            .entry(space.to_owned())
            .or_insert_with(|| Space {
                hnsw: Hnsw::new(
                    MAX_CONNECTIONS,
                    max_points.min(10_000),
                    MAX_LAYERS,
                    EF_CONSTRUCTION,
                    DistCosine {},
                ),
                keys: Vec::new(),
                dimensions: vector.len(),
            });
        if vector.len() != entry.dimensions {
            return;
        }
        let id = entry.keys.len();
        entry.hnsw.insert((vector, id));
        entry.keys.push(key);
        spaces.points += 1;
    }

    /// Drops every space.
    pub fn clear(&self) {
        *self.inner.lock().expect("semantic index lock") = Spaces::default();
    }

    /// Embeddings indexed.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("semantic index lock").points
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A vector the cosine distance can compare: not empty, finite and not all zeros.
fn usable(vector: &[f32]) -> bool {
    !vector.is_empty() && vector.iter().all(|x| x.is_finite()) && vector.iter().any(|x| *x != 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(angle: f32) -> Vec<f32> {
        vec![angle.cos(), angle.sin(), 0.0]
    }

    #[test]
    fn the_nearest_prompt_of_the_same_space_is_found_with_its_similarity() {
        let index = SemanticIndex::new(100);
        index.insert("team-a", &unit(0.0), "k0".into());
        index.insert("team-a", &unit(1.5), "k1".into());
        index.insert("team-b", &unit(0.05), "other-tenant".into());
        let (key, similarity) = index.nearest("team-a", &unit(0.1)).unwrap();
        assert_eq!(key, "k0");
        assert!((similarity - 0.1f32.cos()).abs() < 1e-4, "{similarity}");
        assert_eq!(index.nearest("team-c", &unit(0.0)), None, "an empty space");
        assert_eq!(
            index.nearest("team-a", &[1.0, 0.0]),
            None,
            "other dimensions"
        );
    }

    #[test]
    fn a_full_index_starts_over_and_unusable_vectors_are_ignored() {
        let index = SemanticIndex::new(2);
        index.insert("s", &unit(0.0), "a".into());
        index.insert("s", &[0.0, 0.0, 0.0], "zero".into());
        index.insert("s", &unit(1.0), "b".into());
        assert_eq!(index.len(), 2);
        index.insert("s", &unit(2.0), "c".into());
        assert_eq!(index.len(), 1, "started over");
        assert_eq!(index.nearest("s", &unit(0.0)).unwrap().0, "c");
    }
}
