//! Lists, optionals, boxes, maps and arrays (wire format §5.3, §5.4), with
//! the nesting limit and the recorded lengths of the length pass.

use super::*;

#[inline]
fn list_content_len<T: Wire>(items: &[T]) -> usize {
    match T::ELEM_WIDTH {
        Some(w) => items.len() * w,
        None => items.iter().map(Wire::elem_len).sum(),
    }
}

impl<T: Wire> Wire for Vec<T> {
    const CLASS: Class = Class::Delimited;
    const VALIDATES_ELEM: bool = true;
    const ELEM_FORM: ElemForm = ElemForm::Delimited;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_empty()
    }
    #[inline]
    fn elem_len(&self) -> usize {
        write::delimited_len(list_content_len(self))
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, list_content_len(self) as u64);
        T::encode_list(self, buf);
    }
    #[inline]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.position();
        let mut c = r.delimited()?;
        if let Some(width) = T::ELEM_WIDTH
            && c.remaining() % width != 0
        {
            return Err(DecodeError::RaggedList {
                at,
                len: c.remaining(),
                width,
            });
        }
        T::decode_list(&mut c)
    }
    #[inline]
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    #[inline]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_elem(r)
    }
    #[inline]
    fn fit_field(&self, w: &mut Fit<'_>) {
        self.fit_elem(w);
    }
    #[inline]
    fn fit_elem(&self, w: &mut Fit<'_>) {
        if T::ELEM_WIDTH.is_some() {
            // The length is the count times the width: no walk to save.
            self.encode_elem(w);
            return;
        }
        let at = w.open();
        for item in self {
            item.fit_elem(w);
        }
        w.close(at);
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        self.validate_elem(depth_left)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let d = deeper(depth_left)?;
        if !T::VALIDATES_ELEM {
            return Ok(());
        }
        self.iter().try_for_each(|v| v.validate_elem(d))
    }
    #[inline]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        self.measure_elem(depth_left, lens)
    }
    #[inline]
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        if T::ELEM_WIDTH.is_some() {
            return self.checked_elem_len(depth_left);
        }
        let d = deeper(depth_left)?;
        let slot = lens.reserve();
        let mut n = 0;
        for v in self {
            n += v.measure_elem(d, lens)?;
        }
        lens.set(slot, n);
        Ok(write::delimited_len(n))
    }
    #[inline]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        self.write_elem(buf, lens);
    }
    #[inline]
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        if T::ELEM_WIDTH.is_some() {
            return self.encode_elem(buf);
        }
        let n = lens.take().unwrap_or_else(|| list_content_len(self));
        varint::put(buf, n as u64);
        for v in self {
            v.write_elem(buf, lens);
        }
    }
    #[inline]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        self.checked_elem_len(depth_left)
    }
    #[inline]
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        let d = deeper(depth_left)?;
        let n = match T::ELEM_WIDTH {
            // Fixed-width elements are scalars: nothing to validate.
            Some(w) => self.len() * w,
            None => {
                let mut n = 0;
                for v in self {
                    n += v.checked_elem_len(d)?;
                }
                n
            }
        };
        Ok(write::delimited_len(n))
    }
}

impl<'a, T: WireView<'a>> WireView<'a> for Vec<T> {
    type View = ListView<'a, T>;
    fn view_elem(r: &mut Reader<'a>) -> Result<ListView<'a, T>, DecodeError> {
        ListView::read(r)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<ListView<'a, T>, DecodeError> {
        ListView::read(r)
    }
    fn from_view(v: &ListView<'a, T>) -> Vec<T> {
        v.iter().map(|e| T::from_view(&e)).collect()
    }
}

impl<T: Wire> Wire for Option<T> {
    const CLASS: Class = T::CLASS;
    const VALIDATES_ELEM: bool = true;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_none()
    }
    #[inline]
    fn elem_len(&self) -> usize {
        1 + self.as_ref().map_or(0, Wire::elem_len)
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        match self {
            None => buf.put_u8(0),
            Some(v) => {
                buf.put_u8(1);
                v.encode_elem(buf);
            }
        }
    }
    #[inline]
    fn fit_elem(&self, w: &mut Fit<'_>) {
        match self {
            None => w.put_u8(0),
            Some(v) => {
                w.put_u8(1);
                v.fit_elem(w);
            }
        }
    }
    #[inline]
    fn fit_field(&self, w: &mut Fit<'_>) {
        if let Some(v) = self {
            v.fit_field(w);
        }
    }
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.bool()? {
            r.descend(T::decode_elem).map(Some)
        } else {
            Ok(None)
        }
    }
    #[inline]
    fn field_len(&self) -> usize {
        self.as_ref().map_or(0, Wire::field_len)
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        if let Some(v) = self {
            v.encode_field(buf);
        }
    }
    #[inline(always)]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::decode_field(r).map(Some)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        self.as_ref()
            .map_or(Ok(()), |v| v.validate_field(depth_left))
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        match self {
            Some(v) => v.validate_elem(deeper(depth_left)?),
            None => Ok(()),
        }
    }
    #[inline]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        match self {
            Some(v) => v.checked_field_len(depth_left),
            None => Ok(0),
        }
    }
    #[inline]
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        match self {
            Some(v) => Ok(1 + v.checked_elem_len(deeper(depth_left)?)?),
            None => Ok(1),
        }
    }
    #[inline]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        match self {
            Some(v) => v.measure_field(depth_left, lens),
            None => Ok(0),
        }
    }
    #[inline]
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        match self {
            Some(v) => Ok(1 + v.measure_elem(deeper(depth_left)?, lens)?),
            None => Ok(1),
        }
    }
    #[inline]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        if let Some(v) = self {
            v.write_field(buf, lens);
        }
    }
    #[inline]
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        match self {
            None => buf.put_u8(0),
            Some(v) => {
                buf.put_u8(1);
                v.write_elem(buf, lens);
            }
        }
    }
}

impl<'a, T: WireView<'a>> WireView<'a> for Option<T> {
    type View = Option<T::View>;
    #[inline]
    fn view_elem(r: &mut Reader<'a>) -> Result<Option<T::View>, DecodeError> {
        if r.bool()? {
            r.descend(T::view_elem).map(Some)
        } else {
            Ok(None)
        }
    }
    #[inline(always)]
    fn view_field(r: &mut Reader<'a>) -> Result<Option<T::View>, DecodeError> {
        T::view_field(r).map(Some)
    }
    fn from_view(v: &Option<T::View>) -> Option<T> {
        v.as_ref().map(T::from_view)
    }
}

impl<T: Wire> Wire for Box<T> {
    const CLASS: Class = T::CLASS;
    const VALIDATES_ELEM: bool = T::VALIDATES_ELEM;
    const ELEM_FORM: ElemForm = T::ELEM_FORM;
    const ELEM_WIDTH: Option<usize> = T::ELEM_WIDTH;
    #[inline]
    fn is_default(&self) -> bool {
        (**self).is_default()
    }
    #[inline]
    fn elem_len(&self) -> usize {
        (**self).elem_len()
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        (**self).encode_elem(buf);
    }
    #[inline]
    fn fit_elem(&self, w: &mut Fit<'_>) {
        (**self).fit_elem(w);
    }
    #[inline]
    fn fit_field(&self, w: &mut Fit<'_>) {
        (**self).fit_field(w);
    }
    #[inline]
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::decode_elem(r).map(Box::new)
    }
    #[inline]
    fn field_len(&self) -> usize {
        (**self).field_len()
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        (**self).encode_field(buf);
    }
    #[inline]
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        T::decode_field(r).map(Box::new)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        (**self).validate_field(depth_left)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        (**self).validate_elem(depth_left)
    }
    #[inline]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        (**self).checked_field_len(depth_left)
    }
    #[inline]
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        (**self).checked_elem_len(depth_left)
    }
    #[inline]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        (**self).measure_field(depth_left, lens)
    }
    #[inline]
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        (**self).measure_elem(depth_left, lens)
    }
    #[inline]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        (**self).write_field(buf, lens);
    }
    #[inline]
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        (**self).write_elem(buf, lens);
    }
}

impl<'a, T: WireView<'a>> WireView<'a> for Box<T> {
    type View = LazyView<'a, T>;
    fn view_elem(r: &mut Reader<'a>) -> Result<LazyView<'a, T>, DecodeError> {
        LazyView::read(r, false)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<LazyView<'a, T>, DecodeError> {
        LazyView::read(r, true)
    }
    fn from_view(v: &LazyView<'a, T>) -> Box<T> {
        Box::new(T::from_view(&v.get()))
    }
}

fn map_content_len<'k, K: Wire + 'k, V: Wire + 'k>(
    entries: impl Iterator<Item = (&'k K, &'k V)>,
) -> usize {
    entries.map(|(k, v)| k.elem_len() + v.elem_len()).sum()
}

impl<K: Wire + Ord, V: Wire> Wire for BTreeMap<K, V> {
    const CLASS: Class = Class::Delimited;
    const VALIDATES_ELEM: bool = true;
    const ELEM_FORM: ElemForm = ElemForm::Delimited;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_empty()
    }
    fn elem_len(&self) -> usize {
        write::delimited_len(map_content_len(self.iter()))
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, map_content_len(self.iter()) as u64);
        for (k, v) in self {
            k.encode_elem(buf);
            v.encode_elem(buf);
        }
    }
    #[inline]
    fn fit_field(&self, w: &mut Fit<'_>) {
        self.fit_elem(w);
    }
    #[inline]
    fn fit_elem(&self, w: &mut Fit<'_>) {
        let at = w.open();
        for (k, v) in self {
            k.fit_elem(w);
            v.fit_elem(w);
        }
        w.close(at);
    }
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut c = r.delimited()?;
        let mut map = BTreeMap::new();
        while !c.is_empty() {
            let at = c.position();
            let k = K::decode_elem(&mut c)?;
            if map
                .last_key_value()
                .is_some_and(|(last, _)| !K::key_before(last, &k))
            {
                return Err(DecodeError::MapKeyOrder { at });
            }
            let v = V::decode_elem(&mut c)?;
            map.insert(k, v);
        }
        Ok(map)
    }
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_elem(r)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        self.validate_elem(depth_left)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let d = deeper(depth_left)?;
        if !V::VALIDATES_ELEM {
            return Ok(());
        }
        self.values().try_for_each(|v| v.validate_elem(d))
    }
    #[inline]
    fn checked_field_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        self.checked_elem_len(depth_left)
    }
    fn checked_elem_len(&self, depth_left: u32) -> Result<usize, EncodeError> {
        let d = deeper(depth_left)?;
        let mut n = 0;
        for (k, v) in self {
            n += k.elem_len() + v.checked_elem_len(d)?;
        }
        Ok(write::delimited_len(n))
    }
    #[inline]
    fn measure_field(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        self.measure_elem(depth_left, lens)
    }
    fn measure_elem(&self, depth_left: u32, lens: &mut Lens) -> Result<usize, EncodeError> {
        let d = deeper(depth_left)?;
        let slot = lens.reserve();
        let mut n = 0;
        for (k, v) in self {
            n += k.elem_len() + v.measure_elem(d, lens)?;
        }
        lens.set(slot, n);
        Ok(write::delimited_len(n))
    }
    #[inline]
    fn write_field<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        self.write_elem(buf, lens);
    }
    fn write_elem<B: BufMut + ?Sized>(&self, buf: &mut B, lens: &mut Lens) {
        let n = lens.take().unwrap_or_else(|| map_content_len(self.iter()));
        varint::put(buf, n as u64);
        for (k, v) in self {
            k.encode_elem(buf);
            v.write_elem(buf, lens);
        }
    }
}

impl<'a, K: WireView<'a> + Ord, V: WireView<'a>> WireView<'a> for BTreeMap<K, V>
where
    K::View: PartialOrd,
{
    type View = MapView<'a, K, V>;
    fn view_elem(r: &mut Reader<'a>) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::read(r)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::read(r)
    }
    fn from_view(v: &MapView<'a, K, V>) -> BTreeMap<K, V> {
        v.iter()
            .map(|(k, v)| (K::from_view(&k), V::from_view(&v)))
            .collect()
    }
}

impl<K, V, S> Wire for HashMap<K, V, S>
where
    K: Wire + Ord + core::hash::Hash,
    V: Wire,
    S: core::hash::BuildHasher + Default,
{
    const CLASS: Class = Class::Delimited;
    const VALIDATES_ELEM: bool = true;
    #[inline]
    fn is_default(&self) -> bool {
        self.is_empty()
    }
    fn elem_len(&self) -> usize {
        write::delimited_len(map_content_len(self.iter()))
    }
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        // Deterministic output needs sorted keys; a HashMap has none, so sort references.
        let mut entries: Vec<(&K, &V)> = self.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        varint::put(buf, map_content_len(entries.iter().copied()) as u64);
        for (k, v) in entries {
            k.encode_elem(buf);
            v.encode_elem(buf);
        }
    }
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        BTreeMap::<K, V>::decode_elem(r).map(|m| m.into_iter().collect())
    }
    fn field_len(&self) -> usize {
        self.elem_len()
    }
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        self.encode_elem(buf);
    }
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_elem(r)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        self.validate_elem(depth_left)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let d = deeper(depth_left)?;
        if !V::VALIDATES_ELEM {
            return Ok(());
        }
        self.values().try_for_each(|v| v.validate_elem(d))
    }
}

impl<'a, K, V, S> WireView<'a> for HashMap<K, V, S>
where
    K: WireView<'a> + Ord + core::hash::Hash,
    K::View: PartialOrd,
    V: WireView<'a>,
    S: core::hash::BuildHasher + Default,
{
    type View = MapView<'a, K, V>;
    fn view_elem(r: &mut Reader<'a>) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::read(r)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<MapView<'a, K, V>, DecodeError> {
        MapView::read(r)
    }
    fn from_view(v: &MapView<'a, K, V>) -> Self {
        v.iter()
            .map(|(k, v)| (K::from_view(&k), V::from_view(&v)))
            .collect()
    }
}

impl<T: Wire + Default, const N: usize> Wire for [T; N] {
    const CLASS: Class = Class::Delimited;
    const VALIDATES_ELEM: bool = true;
    #[inline]
    fn is_default(&self) -> bool {
        false
    }
    #[inline]
    fn elem_len(&self) -> usize {
        list_content_len(self)
    }
    #[inline]
    fn encode_elem<B: BufMut + ?Sized>(&self, buf: &mut B) {
        T::encode_list(self, buf);
    }
    fn decode_elem(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.descend(|c| {
            let mut out: [T; N] = core::array::from_fn(|_| T::default());
            for slot in &mut out {
                *slot = T::decode_elem(c)?;
            }
            Ok(out)
        })
    }
    #[inline]
    fn field_len(&self) -> usize {
        write::delimited_len(self.elem_len())
    }
    #[inline]
    fn encode_field<B: BufMut + ?Sized>(&self, buf: &mut B) {
        varint::put(buf, self.elem_len() as u64);
        self.encode_elem(buf);
    }
    fn decode_field(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let mut c = r.delimited()?;
        let at = c.position();
        let v = Self::decode_elem(&mut c).map_err(short_content(at, "array"))?;
        c.finish("array")?;
        Ok(v)
    }
    #[inline]
    fn validate_field(&self, depth_left: u32) -> Result<(), EncodeError> {
        // The length-delimited content, then the element form's own level.
        self.validate_elem(deeper(depth_left)?)
    }
    #[inline]
    fn validate_elem(&self, depth_left: u32) -> Result<(), EncodeError> {
        let d = deeper(depth_left)?;
        if !T::VALIDATES_ELEM {
            return Ok(());
        }
        self.iter().try_for_each(|v| v.validate_elem(d))
    }
}

impl<'a, T: WireView<'a> + Default, const N: usize> WireView<'a> for [T; N] {
    type View = ListView<'a, T>;
    fn view_elem(r: &mut Reader<'a>) -> Result<ListView<'a, T>, DecodeError> {
        ListView::read_array(r, N)
    }
    fn view_field(r: &mut Reader<'a>) -> Result<ListView<'a, T>, DecodeError> {
        let mut c = r.delimited()?;
        let at = c.position();
        let v = ListView::read_array(&mut c, N).map_err(short_content(at, "array"))?;
        c.finish("array")?;
        Ok(v)
    }
    fn from_view(v: &ListView<'a, T>) -> [T; N] {
        let mut out: [T; N] = core::array::from_fn(|_| T::default());
        for (slot, e) in out.iter_mut().zip(v.iter()) {
            *slot = T::from_view(&e);
        }
        out
    }
}
