//! Shared memory as this process sees it: a `Mapping` (`mmap(MAP_SHARED)`
//! of a file or anonymous memory, unmapped in `Drop`) and what every mapped
//! range offers, `View`: typed access to `Shared` layouts, atomics, copies,
//! and the NUL-terminated text the shm commands exchange.
//!
//! A System V segment's attachment (`SysvSegment::attach`) is a `Mapping`
//! too; only its release differs (shmdt).

use std::fmt;
use std::num::NonZeroUsize;
use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicUsize};

use nix::errno::Errno;
use nix::sys::mman::{MapFlags, ProtFlags, mmap, mmap_anonymous, munmap};

/// Types that may live in memory other processes share: `#[repr(C)]`,
/// valid when all bytes are zero (new shared pages are zeroed), and changed
/// only through interior mutability that is sound across processes (atomics,
/// a process-shared semaphore), so a `&T` seen by several processes is sound.
///
/// Declare a layout with [`shared_struct!`](crate::shared_struct), which
/// checks every field; implement it by hand only here, in `ipc`.
///
/// # Safety
/// The implementor guarantees the three properties above.
pub unsafe trait Shared {}

// SAFETY: atomics are repr(transparent) integers, valid at zero, and
// changed only through atomic operations.
unsafe impl Shared for AtomicU64 {}
// SAFETY: as above.
unsafe impl Shared for AtomicU32 {}
// SAFETY: as above.
unsafe impl Shared for AtomicI64 {}
// SAFETY: an array of Shared elements has no bytes of its own: zero-valid
// and changed only through its elements.
unsafe impl<T: Shared, const N: usize> Shared for [T; N] {}

/// Declares a `#[repr(C)]` struct made only of [`Shared`] fields as
/// [`Shared`]. Every field type is checked at compile time, so the layout's
/// soundness rests on its fields, not on a promise at the use site.
#[macro_export]
macro_rules! shared_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        $vis struct $name {
            $($(#[$fmeta])* $fvis $field: $ty),*
        }

        // SAFETY: repr(C), and every field is Shared (checked below): all
        // zero bytes are a valid value of each field, hence of the struct,
        // and nothing in it changes but through its fields' own operations.
        unsafe impl $crate::ipc::mapping::Shared for $name {}

        const _: () = {
            const fn shared<T: $crate::ipc::mapping::Shared + ?Sized>() {}
            $(shared::<$ty>();)*
        };
    };
}

/// Why a layout does not fit a mapped range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// The range ends before the layout does.
    TooSmall,
    /// The offset is not aligned for the type.
    Misaligned,
    /// The range is mapped read-only.
    ReadOnly,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LayoutError::TooSmall => "layout does not fit the region",
            LayoutError::Misaligned => "misaligned layout",
            LayoutError::ReadOnly => "the region is mapped read-only",
        })
    }
}

impl std::error::Error for LayoutError {}

/// A mapped range of shared memory. Only borrowed from its owner (a
/// `Mapping` or an attachment), so no reference into it outlives the range.
pub struct View {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: a View is plain memory. Every access through &View is an atomic
// operation on a Shared type, or a copy into or out of a range that the
// users' protocol (sequence numbers published with Release and read with
// Acquire) gives one side at a time; no method hands out a plain &mut.
unsafe impl Send for View {}
// SAFETY: as above.
unsafe impl Sync for View {}

impl View {
    /// # Safety
    /// `ptr` must be valid for reads (and writes, when `writable`) of `len`
    /// bytes for as long as the View lives.
    pub(crate) unsafe fn new(ptr: NonNull<u8>, len: usize, writable: bool) -> View {
        View { ptr, len, writable }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The `T` at `offset`, bounds and alignment checked.
    ///
    /// # Errors
    /// [`LayoutError`] when it does not fit, is misaligned, or the range is
    /// read-only (a store would fault).
    pub fn at<T: Shared>(&self, offset: usize) -> Result<&T, LayoutError> {
        Ok(&self.slice::<T>(offset, 1)?[0])
    }

    /// `n` consecutive `T`s at `offset`, bounds and alignment checked.
    ///
    /// # Errors
    /// As for [`View::at`].
    pub fn slice<T: Shared>(&self, offset: usize, n: usize) -> Result<&[T], LayoutError> {
        let end = n
            .checked_mul(size_of::<T>())
            .and_then(|b| b.checked_add(offset));
        if end.is_none_or(|end| end > self.len) {
            return Err(LayoutError::TooSmall);
        }
        if (self.ptr.as_ptr() as usize + offset) % align_of::<T>() != 0 {
            return Err(LayoutError::Misaligned);
        }
        if !self.writable {
            return Err(LayoutError::ReadOnly);
        }
        // SAFETY: in bounds and aligned (checked above), writable; `T:
        // Shared` is valid for any bytes its users write and only changes
        // through atomics, so shared references are sound; the borrow of
        // self ends before the range is released.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast::<T>(), n) })
    }

    /// The 32-bit atomic at byte `off`. A hot-path accessor for fixed
    /// layouts: a bad offset is a bug of the caller, so it panics.
    #[inline]
    pub fn atomic_u32(&self, off: usize) -> &AtomicU32 {
        assert!(self.writable && off % 4 == 0 && off + 4 <= self.len);
        // SAFETY: in bounds, aligned (mappings are page-aligned) and
        // writable, checked above; zeroed or written bytes are a valid
        // AtomicU32, which lives as long as &self.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicU32>() }
    }

    /// The pointer-sized atomic at byte `off`; as [`View::atomic_u32`].
    #[inline]
    pub fn atomic_usize(&self, off: usize) -> &AtomicUsize {
        let size = size_of::<AtomicUsize>();
        assert!(self.writable && off % size == 0 && off + size <= self.len);
        // SAFETY: as for atomic_u32.
        unsafe { &*self.ptr.as_ptr().add(off).cast::<AtomicUsize>() }
    }

    /// Copy `src` into the range at `off`; out of bounds is a bug (panics).
    #[inline]
    pub fn write(&self, off: usize, src: &[u8]) {
        assert!(self.writable && off <= self.len && src.len() <= self.len - off);
        // SAFETY: in bounds and writable (checked above); the caller's
        // protocol gives this side sole access to the bytes until it
        // publishes them, and a Rust slice cannot overlap a mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len())
        }
    }

    /// Copy from the range at `off` into `dst`; out of bounds is a bug.
    #[inline]
    pub fn read(&self, off: usize, dst: &mut [u8]) {
        assert!(off <= self.len && dst.len() <= self.len - off);
        // SAFETY: in bounds (checked above); the writer published these
        // bytes (Acquire) and does not touch them before this side is done.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        }
    }

    /// Copy what the range holds at `off..off + dst.len()` into `dst`,
    /// clamped to the range: the number of bytes copied, 0 at or past its
    /// end. Never panics. Memory only, no syscall: use it on ranges that
    /// cannot shrink under us (a System V attachment, a sealed memfd); a
    /// POSIX segment is read with `pread` instead
    /// ([`PosixShm::read_full_at`](super::posix_shm::PosixShm::read_full_at)).
    pub fn read_at(&self, off: usize, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.len.saturating_sub(off));
        if n > 0 {
            self.read(off, &mut dst[..n]);
        }
        n
    }

    /// Copy `src` into the range at `off`, checked: unlike
    /// [`View::write`], a range that is read-only or too short is an error,
    /// not a panic, and nothing is copied.
    ///
    /// # Errors
    /// EINVAL when the range is read-only or `src` does not fit at `off`.
    pub fn write_at(&self, off: usize, src: &[u8]) -> Result<(), Errno> {
        if !self.writable || off > self.len || src.len() > self.len - off {
            return Err(Errno::EINVAL);
        }
        self.write(off, src);
        Ok(())
    }

    /// The text at offset 0, up to the first NUL (or the whole range),
    /// copied into `text`. Copies in chunks and stops at the chunk with the
    /// NUL, so watching a large segment costs the length of its text.
    pub fn read_text(&self, text: &mut Vec<u8>) {
        const CHUNK: usize = 4096;
        text.clear();
        let mut offset = 0;
        while offset < self.len {
            let n = CHUNK.min(self.len - offset);
            text.reserve(n);
            // SAFETY: offset + n <= len bytes of the live range; the
            // destination is `n` bytes of spare capacity of our own Vec,
            // reserved just above. Other processes may write meanwhile: the
            // copy then holds old or new bytes, which is what shared memory
            // offers.
            unsafe {
                let dst = text.as_mut_ptr().add(text.len());
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), dst, n);
                text.set_len(text.len() + n);
            }
            if let Some(end) = text[offset..].iter().position(|&b| b == 0) {
                text.truncate(offset + end);
                return;
            }
            offset += n;
        }
    }

    /// Copy `text` and a NUL terminator to offset 0. The NUL goes last, so a
    /// reader of the text never runs past the new end.
    ///
    /// # Errors
    /// EINVAL when the range is read-only or `text` and its NUL do not fit.
    pub fn write_text(&self, text: &[u8]) -> Result<(), Errno> {
        if !self.writable || text.len() >= self.len {
            return Err(Errno::EINVAL);
        }
        let dst = self.ptr.as_ptr();
        // SAFETY: text.len() + 1 <= len bytes of a live, writable range; the
        // source is a Rust slice and cannot overlap it.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), dst, text.len());
            dst.add(text.len()).write_volatile(0);
        }
        Ok(())
    }

    /// [`View::write_text`], then zero what is left of a longer old text
    /// after the new NUL, so the range holds exactly `text` up to the old
    /// text's end. The clearing happens beyond the terminator, where a
    /// reader of the text stops.
    ///
    /// # Errors
    /// As for [`View::write_text`].
    pub fn replace_text(&self, text: &[u8]) -> Result<(), Errno> {
        let mut old = Vec::new();
        self.read_text(&mut old);
        self.write_text(text)?;
        let start = text.len() + 1;
        if old.len() > start {
            // SAFETY: start..old.len() lies within the range (read_text
            // stops at len) and it is writable (write_text checked).
            unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(start), 0, old.len() - start) };
        }
        Ok(())
    }
}

/// Shared memory mapped into this process, released in `Drop`: unmapped
/// (`munmap`), or detached (`shmdt`) for a System V segment's attachment.
/// Made before `fork`, an anonymous mapping is the same memory in every
/// child and has no name, so a crash or Ctrl-C cannot leave it behind.
pub struct Mapping {
    view: View,
    release: Release,
}

/// How a mapping goes away.
pub(crate) enum Release {
    Munmap,
    Shmdt,
}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS, -1, 0)`:
    /// `len` zeroed bytes shared with every child forked afterwards.
    ///
    /// # Errors
    /// EINVAL for `len` 0; ENOMEM when the address space or memory limit
    /// is reached.
    ///
    /// # References
    /// [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    pub fn anonymous(len: usize) -> Result<Mapping, Errno> {
        Mapping::map(len, None)
    }

    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`: the first
    /// `len` bytes of the file, shared with every process that maps it.
    ///
    /// An access to a page past the file's end is SIGBUS: map only a file
    /// that cannot shrink (a sealed memfd), or guard the range (a semaphore).
    ///
    /// # Errors
    /// EINVAL for `len` 0; EACCES when `fd` is not open for reading and
    /// writing; ENODEV when the file cannot be mapped.
    ///
    /// # References
    /// [mmap(2)](https://man7.org/linux/man-pages/man2/mmap.2.html)
    pub fn of_file(fd: BorrowedFd<'_>, len: usize) -> Result<Mapping, Errno> {
        Mapping::map(len, Some(fd))
    }

    fn map(len: usize, fd: Option<BorrowedFd<'_>>) -> Result<Mapping, Errno> {
        let length = NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
        let prot = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
        // SAFETY: a new mapping at an address the kernel picks aliases no
        // Rust memory; Mapping unmaps it exactly once, in Drop. The kernel
        // keeps a mapped file referenced, so closing `fd` later is harmless.
        let ptr = unsafe {
            match fd {
                Some(fd) => mmap(None, length, prot, MapFlags::MAP_SHARED, fd, 0),
                None => mmap_anonymous(None, length, prot, MapFlags::MAP_SHARED),
            }
        }?;
        // SAFETY: mmap made len readable and writable bytes at ptr, which
        // live until Drop.
        let view = unsafe { View::new(ptr.cast(), len, true) };
        Ok(Mapping {
            view,
            release: Release::Munmap,
        })
    }

    /// Take over `view`, released the way `release` says.
    ///
    /// # Safety
    /// `view` must be exactly one live mapping this process made (mmap or
    /// shmat, matching `release`), released nowhere else.
    pub(crate) unsafe fn from_view(view: View, release: Release) -> Mapping {
        Mapping { view, release }
    }
}

impl Deref for Mapping {
    type Target = View;

    fn deref(&self) -> &View {
        &self.view
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let ptr = self.view.ptr.cast();
        match self.release {
            Release::Munmap => {
                // SAFETY: ptr/len are exactly what mmap returned, unmapped
                // once; no borrow of the view outlives self.
                let _ = unsafe { munmap(ptr, self.view.len) };
            }
            Release::Shmdt => {
                // SAFETY: the address one successful shmat returned,
                // detached once; no borrow of the view outlives self.
                let _ = unsafe { libc::shmdt(ptr.as_ptr()) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::shared_struct! {
        struct Layout {
            a: AtomicU64,
            b: [AtomicU32; 2],
        }
    }

    #[test]
    fn layouts_are_checked() {
        let map = Mapping::anonymous(64).unwrap();
        let l: &Layout = map.at(0).unwrap();
        l.b[1].store(7, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            map.atomic_u32(12)
                .load(std::sync::atomic::Ordering::Relaxed),
            7
        );
        assert_eq!(map.at::<Layout>(60).err(), Some(LayoutError::TooSmall));
        assert_eq!(map.at::<AtomicU64>(4).err(), Some(LayoutError::Misaligned));
        assert!(Mapping::anonymous(0).is_err());
    }

    #[test]
    fn text_replaces_a_longer_one() {
        let map = Mapping::anonymous(16).unwrap();
        map.write_text(b"hello world").unwrap();
        map.replace_text(b"hi").unwrap();
        let mut text = Vec::new();
        map.read_text(&mut text);
        assert_eq!(text, b"hi");
        let mut all = [0u8; 16];
        map.read(0, &mut all);
        assert_eq!(&all[..4], b"hi\0\0");
        assert!(all[3..].iter().all(|&b| b == 0));
        assert_eq!(map.write_text(&[b'x'; 16]), Err(Errno::EINVAL));
    }

    #[test]
    fn checked_copies_clamp_instead_of_panicking() {
        let map = Mapping::anonymous(8).unwrap();
        assert_eq!(map.write_at(6, b"abc"), Err(Errno::EINVAL));
        assert_eq!(map.write_at(9, b""), Err(Errno::EINVAL));
        map.write_at(5, b"xyz").unwrap();
        let mut buf = [0u8; 6];
        assert_eq!(map.read_at(4, &mut buf), 4);
        assert_eq!(&buf[..4], b"\0xyz");
        assert_eq!(map.read_at(8, &mut buf), 0);
        assert_eq!(map.read_at(usize::MAX, &mut buf), 0);
    }
}
