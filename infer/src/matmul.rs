//! f32 matrix products on slices, for the engine's own CPU code (the fused attention, the BERT
//! encoder): gemm's kernels behind a safe call that checks every dimension and stride against
//! the slices, so that the one `unsafe` block that hands gemm raw pointers is here.

use gemm::{Parallelism, gemm};

/// A matrix read from a slice: element (i, j) is `data[i * row_stride + j * col_stride]`.
/// A transposed or strided view (one head's columns of a wider row) costs nothing.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    /// `rows` × `cols` stored row after row.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Matrix<'a> {
        Matrix::strided(data, rows, cols, cols, 1)
    }

    /// `rows` × `cols` with the given strides. Panics when the last element lies past the
    /// slice: a caller's wrong dimensions, caught before gemm reads anything.
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Matrix<'a> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(
                last < data.len(),
                "a {rows}x{cols} matrix with strides ({row_stride}, {col_stride}) needs {} values, the slice has {}",
                last + 1,
                data.len()
            );
        }
        Matrix {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The same values read as the transpose.
    pub fn t(self) -> Matrix<'a> {
        Matrix {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// Whether one product may spread over rayon's pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// On the calling thread: inside a rayon task, or a product too small to share.
    One,
    /// Over rayon's global pool (gemm splits it when it is big enough to pay).
    Pool,
}

/// `out` (a.rows × b.cols, row-major) = `scale` · a · b, added to what `out` holds when
/// `accumulate` (a bias or a residual written there first), else written over it.
pub fn multiply(
    out: &mut [f32],
    a: Matrix<'_>,
    b: Matrix<'_>,
    scale: f32,
    accumulate: bool,
    threads: Threads,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(
        k, b.rows,
        "a {m}x{k} matrix cannot multiply a {}x{n} one",
        b.rows
    );
    assert_eq!(
        out.len(),
        m * n,
        "the product of {m}x{k} and {k}x{n} has {} values",
        m * n
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.fill(0.0);
        }
        return;
    }
    let parallelism = match threads {
        Threads::One => Parallelism::None,
        Threads::Pool => Parallelism::Rayon(rayon::current_num_threads()),
    };
    // SAFETY: `Matrix::strided` checked that every element (i, j) of a and b lies inside its
    // slice, and `out` holds exactly m × n values written row-major (column stride 1, row
    // stride n), so gemm reads and writes only within the three slices, which Rust's borrows
    // keep apart.
    unsafe {
        gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    fn values(count: usize, seed: u32) -> Vec<f32> {
        (0..count)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn a_product_matches_the_textbook_one_transposed_or_not() {
        let (m, k, n) = (37, 70, 45);
        let a = values(m * k, 1);
        let b = values(k * n, 2);
        let expected = naive(&a, &b, m, k, n);
        let mut out = vec![0.0; m * n];
        let b_rows = Matrix::row_major(&b, k, n);
        multiply(
            &mut out,
            Matrix::row_major(&a, m, k),
            b_rows,
            1.0,
            false,
            Threads::Pool,
        );
        assert!(out.iter().zip(&expected).all(|(x, y)| (x - y).abs() < 1e-4));
        // b stored transposed ([n, k]) and read back through t(): the same product.
        let bt: Vec<f32> = (0..n)
            .flat_map(|j| (0..k).map(move |p| (p, j)))
            .map(|(p, j)| b[p * n + j])
            .collect();
        let mut again = vec![0.0; m * n];
        let b_read = Matrix::row_major(&bt, n, k).t();
        multiply(
            &mut again,
            Matrix::row_major(&a, m, k),
            b_read,
            1.0,
            false,
            Threads::One,
        );
        assert!(
            again
                .iter()
                .zip(&expected)
                .all(|(x, y)| (x - y).abs() < 1e-4)
        );
    }

    #[test]
    fn accumulate_adds_the_scaled_product_to_what_was_there() {
        let a = [1.0, 2.0];
        let b = [3.0, 4.0];
        let mut out = [10.0];
        let (a, b) = (Matrix::row_major(&a, 1, 2), Matrix::row_major(&b, 2, 1));
        multiply(&mut out, a, b, 0.5, true, Threads::One);
        assert_eq!(out, [10.0 + 0.5 * 11.0]);
        multiply(&mut out, a, b, 1.0, false, Threads::One);
        assert_eq!(out, [11.0]);
    }

    #[test]
    #[should_panic(expected = "needs 13 values, the slice has 12")]
    fn a_view_past_its_slice_is_refused() {
        Matrix::strided(&[0.0; 12], 3, 3, 5, 1);
    }
}
