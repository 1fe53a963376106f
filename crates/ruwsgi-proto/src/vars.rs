//! CGI variables, stored flat.
//!
//! A request's variables (`REQUEST_METHOD`, `PATH_INFO`, `HTTP_HOST`, ...) are the single
//! representation both protocols produce: a uwsgi packet carries them as they are, an HTTP
//! head is translated into them. They live in one byte buffer plus a table of spans, so a
//! connection reuses the same allocation for every request it serves.

/// An ordered list of `key = value` byte pairs backed by one buffer.
///
/// Duplicate keys are kept in order; [`Vars::get`] returns the last one, as a WSGI environ
/// built from the list would.
#[derive(Debug, Default, Clone)]
pub struct Vars {
    data: Vec<u8>,
    /// `[key_start, key_end, value_end]`: the value starts where the key ends.
    spans: Vec<[u32; 3]>,
}

impl Vars {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty list with room for `bytes` of keys and values and `count` pairs.
    pub fn with_capacity(bytes: usize, count: usize) -> Self {
        Vars {
            data: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(count),
        }
    }

    /// Make room for `bytes` more bytes of keys and values and `count` more pairs.
    pub fn reserve(&mut self, bytes: usize, count: usize) {
        self.data.reserve(bytes);
        self.spans.reserve(count);
    }

    /// Forget every pair, keeping the allocations.
    pub fn clear(&mut self) {
        self.data.clear();
        self.spans.clear();
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Total bytes of keys and values.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Append a pair.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        let ks = self.data.len() as u32;
        self.data.extend_from_slice(key);
        let ke = self.data.len() as u32;
        self.data.extend_from_slice(value);
        self.spans.push([ks, ke, self.data.len() as u32]);
    }

    /// Append an HTTP header as its CGI variable: `HTTP_` + the name upper-cased with `-`
    /// turned into `_`. `Content-Type` and `Content-Length` become `CONTENT_TYPE` and
    /// `CONTENT_LENGTH` (no `HTTP_` prefix), as CGI says.
    pub fn push_http_header(&mut self, name: &[u8], value: &[u8]) {
        let ks = self.data.len() as u32;
        let bare = name.eq_ignore_ascii_case(b"content-type")
            || name.eq_ignore_ascii_case(b"content-length");
        if !bare {
            self.data.extend_from_slice(b"HTTP_");
        }
        self.data.extend(name.iter().map(|&c| match c {
            b'-' => b'_',
            c => c.to_ascii_uppercase(),
        }));
        let ke = self.data.len() as u32;
        self.data.extend_from_slice(value);
        self.spans.push([ks, ke, self.data.len() as u32]);
    }

    /// The pair at `index`.
    pub fn at(&self, index: usize) -> (&[u8], &[u8]) {
        let [ks, ke, ve] = self.spans[index];
        (
            &self.data[ks as usize..ke as usize],
            &self.data[ke as usize..ve as usize],
        )
    }

    /// The value of the last pair called `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// True if some pair is called `key`.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.iter().any(|(k, _)| k == key)
    }

    /// Remove every pair called `key`; returns how many were removed.
    pub fn remove(&mut self, key: &[u8]) -> usize {
        let before = self.spans.len();
        let data = &self.data;
        self.spans
            .retain(|[ks, ke, _]| &data[*ks as usize..*ke as usize] != key);
        before - self.spans.len()
    }

    /// Iterate over the pairs in order.
    pub fn iter(&self) -> VarsIter<'_> {
        VarsIter {
            vars: self,
            front: 0,
            back: self.spans.len(),
        }
    }
}

/// Iterator over [`Vars`] pairs.
pub struct VarsIter<'a> {
    vars: &'a Vars,
    front: usize,
    back: usize,
}

impl<'a> Iterator for VarsIter<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        Some(self.vars.at(self.front - 1))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.back - self.front, Some(self.back - self.front))
    }
}

impl DoubleEndedIterator for VarsIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        Some(self.vars.at(self.back))
    }
}

impl ExactSizeIterator for VarsIter<'_> {}

impl<'a> IntoIterator for &'a Vars {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = VarsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_get_last_wins() {
        let mut v = Vars::new();
        v.push(b"A", b"1");
        v.push(b"B", b"");
        v.push(b"A", b"2");
        assert_eq!(v.len(), 3);
        assert_eq!(v.get(b"A"), Some(&b"2"[..]));
        assert_eq!(v.get(b"B"), Some(&b""[..]));
        assert_eq!(v.get(b"C"), None);
        assert_eq!(v.remove(b"A"), 2);
        assert_eq!(v.iter().collect::<Vec<_>>(), vec![(&b"B"[..], &b""[..])]);
    }

    #[test]
    fn http_header_names() {
        let mut v = Vars::new();
        v.push_http_header(b"X-Forwarded-For", b"1.2.3.4");
        v.push_http_header(b"content-type", b"text/plain");
        v.push_http_header(b"Content-Length", b"5");
        let keys: Vec<_> = v.iter().map(|(k, _)| k.to_vec()).collect();
        assert_eq!(
            keys,
            vec![
                b"HTTP_X_FORWARDED_FOR".to_vec(),
                b"CONTENT_TYPE".to_vec(),
                b"CONTENT_LENGTH".to_vec()
            ]
        );
    }
}
