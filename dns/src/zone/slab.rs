//! The zone's slab: its slots at stable numbers (the indexes hold those numbers, 4 bytes,
//! rather than keys), the numbers of freed slots reused.

/// Values at stable numbers.
pub struct Slab<T> {
    values: Vec<Option<T>>,
    /// The numbers of empty places.
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            values: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    pub fn get(&self, id: u32) -> Option<&T> {
        self.values.get(id as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.values.get_mut(id as usize)?.as_mut()
    }

    /// Keeps `value`, answering its number.
    ///
    /// Panics past 4 billion values.
    pub fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(id) => {
                self.values[id as usize] = Some(value);
                id
            }
            None => {
                self.values.push(Some(value));
                u32::try_from(self.values.len() - 1).expect("fewer than 4 billion slots")
            }
        }
    }

    pub fn remove(&mut self, id: u32) -> Option<T> {
        let value = self.values.get_mut(id as usize)?.take()?;
        self.free.push(id);
        Some(value)
    }

    /// The values, with their numbers.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(id, v)| Some((id as u32, v.as_ref()?)))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.values.iter_mut().flatten()
    }

    /// How many numbers are in use or free for reuse.
    #[cfg(test)]
    pub fn capacity_used(&self) -> usize {
        self.values.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slab_keeps_numbers_and_reuses_freed_ones() {
        let mut slab = Slab::default();
        let ids: Vec<u32> = (0..600).map(|i| slab.insert(i)).collect();
        assert_eq!(ids, (0..600).collect::<Vec<_>>());
        assert_eq!(slab.get(599), Some(&599));
        assert_eq!(slab.remove(300), Some(300));
        assert_eq!(slab.remove(300), None);
        assert_eq!(slab.get(300), None);
        assert_eq!(slab.get(600), None, "past the end");
        assert_eq!(slab.insert(1000), 300, "a freed number is reused");
        assert_eq!(slab.capacity_used(), 600);
        *slab.get_mut(0).unwrap() += 1;
        assert_eq!(slab.iter().next(), Some((0, &1)));
        assert_eq!(slab.iter().count(), 600);
        slab.values_mut().for_each(|v| *v = 7);
        assert!(slab.iter().all(|(_, v)| *v == 7));
    }
}
