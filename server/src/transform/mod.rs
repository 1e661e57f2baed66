//! On-demand transformations: the outputs of an `OnDemandFeatureView` computed from its input
//! features and request data, on Arrow batches.
//!
//! - `sql` mode (a Larder extension): one SQL expression per output, compiled once per
//!   definition into DataFusion physical expressions and evaluated on the batch in-process
//!   ([`sql`]).
//! - `pandas` and `python` modes (Feast's UDFs): run by a Python worker process that the server
//!   starts on first use and feeds Arrow IPC over a Unix socket ([`python`]).
//!
//! The input batch has one column per input feature, named both `feature` and
//! `view__feature` (as Feast's transformation inputs), plus one per request-source field.

pub mod python;
pub mod sql;

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Field as ArrowField, Schema, SchemaRef};
use larder_registry::{DataSource, OnDemandFeatureView, RegistryDoc, ValueType};

use crate::error::{Error, Result};
use crate::value::arrow_type;

/// One input column of an on-demand view: its name and Feast type.
#[derive(Debug, Clone, PartialEq)]
pub struct InputColumn {
    /// Column name in the input batch.
    pub name: String,
    /// Feast type.
    pub dtype: ValueType,
    /// Where the values come from.
    pub origin: InputOrigin,
}

/// Where an input column's values come from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputOrigin {
    /// Feature `feature` of feature view `view`.
    Feature {
        /// The view.
        view: String,
        /// The feature.
        feature: String,
    },
    /// A request-source field (passed with the request: `entities` online, a column of the
    /// entity dataframe offline).
    Request,
}

/// The input columns of `odfv`, in a fixed order: each source view's features (as `feature`,
/// then `view__feature`; the short name is left out when two views share it), then the
/// request fields.
pub fn input_columns(doc: &RegistryDoc, odfv: &OnDemandFeatureView) -> Result<Vec<InputColumn>> {
    let mut features = Vec::new();
    for p in &odfv.sources {
        let view = doc.feature_view(&p.view).ok_or_else(|| {
            Error::Internal(format!(
                "on-demand view {}: source view {} is missing",
                odfv.name, p.view
            ))
        })?;
        let names: Vec<&str> = if p.features.is_empty() {
            view.features.iter().map(|f| f.name.as_str()).collect()
        } else {
            p.features.iter().map(String::as_str).collect()
        };
        for f in names {
            let field = view.feature(f).ok_or_else(|| {
                Error::Internal(format!(
                    "on-demand view {}: feature {f} is not in view {}",
                    odfv.name, p.view
                ))
            })?;
            let display = p.alias.as_deref().unwrap_or(&p.view);
            features.push((display.to_string(), p.view.clone(), field.name.clone(), field.dtype));
        }
    }
    let mut out = Vec::new();
    for (display, view, feature, dtype) in &features {
        let origin = InputOrigin::Feature {
            view: view.clone(),
            feature: feature.clone(),
        };
        if features.iter().filter(|(_, _, f, _)| f == feature).count() == 1 {
            out.push(InputColumn {
                name: feature.clone(),
                dtype: *dtype,
                origin: origin.clone(),
            });
        }
        out.push(InputColumn {
            name: format!("{display}__{feature}"),
            dtype: *dtype,
            origin,
        });
    }
    for name in &odfv.request_sources {
        let Some(DataSource::Request(r)) = doc.data_source(name) else {
            return Err(Error::Internal(format!(
                "on-demand view {}: request source {name} is missing",
                odfv.name
            )));
        };
        for f in &r.schema {
            if !out.iter().any(|c| c.name == f.name) {
                out.push(InputColumn {
                    name: f.name.clone(),
                    dtype: f.dtype,
                    origin: InputOrigin::Request,
                });
            }
        }
    }
    Ok(out)
}

/// The type an online read hands an on-demand view for a column of Feast type `ty`: Feast's
/// online path builds the transformation's input from its answer's Python values (through
/// pyarrow), so a float32 feature arrives as float64 and an int32 one as int64 — and a pandas
/// transformation computes on them at that width (`f32 + f32` in double precision). Training
/// sets keep the stored widths, as Feast's offline path does.
pub fn online_input_type(ty: ValueType) -> ValueType {
    match ty {
        ValueType::Float => ValueType::Double,
        ValueType::Int32 => ValueType::Int64,
        ValueType::FloatList => ValueType::DoubleList,
        ValueType::Int32List => ValueType::Int64List,
        other => other,
    }
}

/// The Arrow schema of an input batch.
pub fn input_schema(columns: &[InputColumn]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| ArrowField::new(&c.name, arrow_type(c.dtype), true))
            .collect::<Vec<_>>(),
    ))
}

/// The Arrow schema of an on-demand view's output.
pub fn output_schema(odfv: &OnDemandFeatureView) -> SchemaRef {
    Arc::new(Schema::new(
        odfv.features
            .iter()
            .map(|f| ArrowField::new(&f.name, arrow_type(f.dtype), true))
            .collect::<Vec<_>>(),
    ))
}

/// Casts `column` (an output of the transformation) to the declared type of `name`.
pub(crate) fn conform(odfv: &OnDemandFeatureView, name: &str, column: ArrayRef) -> Result<ArrayRef> {
    let field = odfv
        .features
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| Error::Internal(format!("on-demand view {}: no output {name}", odfv.name)))?;
    let target = arrow_type(field.dtype);
    if column.data_type() == &target {
        return Ok(column);
    }
    cast(&column, &target).map_err(|e| {
        Error::Internal(format!(
            "on-demand view {}: output {name} is {} and cannot be read as {}: {e}",
            odfv.name,
            column.data_type(),
            field.dtype
        ))
    })
}

/// Runs on-demand transformations (both kinds).
#[derive(Debug)]
pub struct Transforms {
    sql: sql::SqlTransforms,
    python: python::PythonWorker,
}

impl Transforms {
    /// Transforms whose Python worker runs in `work_dir` (the repo), started on first use.
    pub fn new(work_dir: PathBuf) -> Self {
        Transforms {
            sql: sql::SqlTransforms::default(),
            python: python::PythonWorker::new(work_dir),
        }
    }

    /// The outputs of `odfv` for the rows of `inputs` (whose schema is [`input_schema`]).
    pub async fn run(&self, odfv: &OnDemandFeatureView, inputs: RecordBatch) -> Result<RecordBatch> {
        match odfv.mode.as_str() {
            "sql" => self.sql.run(odfv, &inputs),
            "pandas" | "python" => self.python.run(odfv, inputs).await,
            other => Err(Error::invalid(
                "features",
                format!("on-demand view {}: mode `{other}` cannot be served", odfv.name),
            )),
        }
    }
}

/// One on-demand view to compute over a training set.
#[derive(Debug, Clone)]
pub struct OdfvPlan {
    /// The view.
    pub odfv: OnDemandFeatureView,
    /// `(output feature, column name in the training set)` for the requested outputs.
    pub outputs: Vec<(String, String)>,
    /// Its input columns.
    pub inputs: Vec<InputColumn>,
    /// For each input, the column of the joined batch that holds it.
    pub sources: Vec<String>,
}

/// An input column in the type transformations see: maps, structs and JSON documents as JSON
/// text (as online, where they come from stored values), everything else cast to its Feast
/// type's Arrow type.
fn input_array(a: &ArrayRef, ty: ValueType) -> datafusion::error::Result<ArrayRef> {
    if matches!(
        ty.element().unwrap_or(ty),
        ValueType::Map | ValueType::Struct | ValueType::Json
    ) {
        let values =
            crate::value::column_values(a, ty).map_err(|e| datafusion::error::DataFusionError::Execution(e.0))?;
        return crate::value::values_to_array(&values, ty);
    }
    Ok(cast(a, &arrow_type(ty))?)
}

/// Adds on-demand outputs to a training-set stream, batch by batch, and drops the `hidden`
/// helper columns (inputs that were joined only for the transformations). Request data come
/// from the entity dataframe's columns; a missing one is refused up front, named.
pub fn apply_to_stream(
    transforms: Arc<Transforms>,
    input: datafusion::execution::SendableRecordBatchStream,
    plans: Vec<OdfvPlan>,
    hidden: Vec<String>,
) -> Result<datafusion::execution::SendableRecordBatchStream> {
    use futures::StreamExt;

    let in_schema = input.schema();
    for p in &plans {
        for (c, src) in p.inputs.iter().zip(&p.sources) {
            if in_schema.field_with_name(src).is_err() {
                return Err(Error::invalid(
                    format!("entity_df.{}", c.name),
                    format!(
                        "request data `{}` is required by on-demand feature view {} but is not a column of the entity dataframe",
                        c.name, p.odfv.name
                    ),
                ));
            }
        }
    }
    let keep: Vec<usize> = (0..in_schema.fields().len())
        .filter(|i| !hidden.contains(in_schema.field(*i).name()))
        .collect();
    let mut fields: Vec<ArrowField> = keep.iter().map(|i| in_schema.field(*i).clone()).collect();
    for p in &plans {
        for (f, out) in &p.outputs {
            let dtype = p
                .odfv
                .feature(f)
                .map(|x| x.dtype)
                .ok_or_else(|| Error::Internal(format!("no output {f}")))?;
            fields.push(ArrowField::new(out, arrow_type(dtype), true));
        }
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    let out_schema = Arc::clone(&schema);
    let plans = Arc::new(plans);
    let external = |e: Error| datafusion::error::DataFusionError::External(Box::new(e));
    let stream = input.then(move |batch| {
        let transforms = Arc::clone(&transforms);
        let plans = Arc::clone(&plans);
        let schema = Arc::clone(&out_schema);
        let keep = keep.clone();
        async move {
            let batch = batch?;
            let mut columns: Vec<ArrayRef> = keep.iter().map(|i| Arc::clone(batch.column(*i))).collect();
            for p in plans.iter() {
                let mut arrays = Vec::with_capacity(p.inputs.len());
                for (c, src) in p.inputs.iter().zip(&p.sources) {
                    let a = batch
                        .column_by_name(src)
                        .ok_or_else(|| external(Error::Internal(format!("no column {src}"))))?;
                    arrays.push(input_array(a, c.dtype)?);
                }
                let inputs = RecordBatch::try_new(input_schema(&p.inputs), arrays)?;
                let out = transforms.run(&p.odfv, inputs).await.map_err(external)?;
                for (f, _) in &p.outputs {
                    let col = out
                        .column_by_name(f)
                        .ok_or_else(|| external(Error::Internal(format!("no output {f}"))))?;
                    columns.push(Arc::clone(col));
                }
            }
            Ok(RecordBatch::try_new(schema, columns)?)
        }
    });
    Ok(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, stream),
    ))
}
