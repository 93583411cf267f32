//! NumPy ↔ the runtime's flat vectors: token ids (any integer array, checked to fit
//! i32), float32 values of a given shape, and arrays handed back as owned copies.

use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::error;

/// `values` as a float32 array of `shape`.
pub fn f32_array<'py>(py: Python<'py>, values: Vec<f32>, shape: &[usize]) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    values.into_pyarray(py).reshape(shape.to_vec())
}

/// An array-like as a C-contiguous NumPy array of `dtype` (numpy's `ascontiguousarray`).
fn contiguous<'py>(values: &Bound<'py, PyAny>, dtype: &str) -> PyResult<Bound<'py, PyAny>> {
    let numpy = values.py().import("numpy")?;
    let dtype = numpy.getattr(dtype)?;
    numpy.call_method1("ascontiguousarray", (values, dtype))
}

/// Token ids: an integer array-like of `dims` dimensions (int32 or int64, any integer
/// type) as i32 values and its shape; a value outside i32 is an error, not a wrap.
pub fn token_ids(values: &Bound<'_, PyAny>, dims: usize, what: &str) -> PyResult<(Vec<i32>, Vec<usize>)> {
    let numpy = values.py().import("numpy")?;
    let array = numpy.call_method1("asarray", (values,))?;
    let kind: String = array.getattr("dtype")?.getattr("kind")?.extract()?;
    if !(kind == "i" || kind == "u") || array.getattr("ndim")?.extract::<usize>()? != dims {
        let dtype: String = array.getattr("dtype")?.str()?.extract()?;
        let shape: Vec<usize> = array.getattr("shape")?.extract()?;
        let wanted = if dims == 2 { "batch × seq_len" } else { "one sequence" };
        return Err(error(format!(
            "{what}: expected a {dims}-D integer array ({wanted}), got {dtype} of shape {shape:?}"
        )));
    }
    let wide: PyReadonlyArrayDyn<i64> = contiguous(&array, "int64")?.extract()?;
    let shape = wide.shape().to_vec();
    let ids = wide.as_slice().map_err(|e| error(e.to_string()))?;
    let narrow = ids
        .iter()
        .map(|id| i32::try_from(*id).map_err(|_| error(format!("{what}: token id {id} does not fit int32"))))
        .collect::<PyResult<Vec<i32>>>()?;
    Ok((narrow, shape))
}

/// A float array-like of exactly `shape`, as float32 values (a float64 array is
/// converted; any other shape is an error naming both).
pub fn f32_values(values: &Bound<'_, PyAny>, shape: &[usize], what: &str) -> PyResult<Vec<f32>> {
    let array: PyReadonlyArrayDyn<f32> = contiguous(values, "float32")?.extract()?;
    if array.shape() != shape {
        return Err(error(format!("`{what}` has shape {shape:?}, got an array of shape {:?}", array.shape())));
    }
    Ok(array.as_slice().map_err(|e| error(e.to_string()))?.to_vec())
}
