//! `mode="sql"` on-demand views: one SQL expression per output (`name = expression` lines),
//! compiled once per definition into DataFusion physical expressions and evaluated on Arrow
//! batches in-process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use larder_registry::OnDemandFeatureView;

use super::{conform, output_schema};
use crate::error::{Error, Result};

/// A compiled view: its input schema and one physical expression per output.
#[derive(Debug)]
struct Compiled {
    body: String,
    schema: datafusion::arrow::datatypes::SchemaRef,
    outputs: Vec<(String, Arc<dyn PhysicalExpr>)>,
}

/// Compiled SQL transformations, by view name (recompiled when the body or inputs change).
#[derive(Debug, Default)]
pub struct SqlTransforms {
    cache: Mutex<HashMap<String, Arc<Compiled>>>,
}

/// Splits the body into `(output, expression)` pairs: one `name = expression` per line.
pub fn parse_body(odfv: &OnDemandFeatureView) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for line in odfv
        .udf_body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
    {
        let (name, expr) = line.split_once('=').ok_or_else(|| {
            Error::invalid(
                "features",
                format!("on-demand view {}: `{line}` is not `output = expression`", odfv.name),
            )
        })?;
        out.push((name.trim().to_string(), expr.trim().to_string()));
    }
    for f in &odfv.features {
        if !out.iter().any(|(n, _)| n == &f.name) {
            return Err(Error::invalid(
                "features",
                format!("on-demand view {}: no expression for output {}", odfv.name, f.name),
            ));
        }
    }
    Ok(out)
}

impl SqlTransforms {
    fn compiled(&self, odfv: &OnDemandFeatureView, inputs: &RecordBatch) -> Result<Arc<Compiled>> {
        if let Ok(cache) = self.cache.lock() {
            if let Some(c) = cache.get(&odfv.name) {
                if c.body == odfv.udf_body && c.schema == inputs.schema() {
                    return Ok(Arc::clone(c));
                }
            }
        }
        let ctx = SessionContext::new();
        let df_schema = DFSchema::try_from(inputs.schema().as_ref().clone())?;
        let mut outputs = Vec::new();
        for (name, text) in parse_body(odfv)? {
            let bad = |e: datafusion::error::DataFusionError| {
                Error::invalid(
                    "features",
                    format!("on-demand view {}: expression for {name} (`{text}`): {e}", odfv.name),
                )
            };
            let expr = ctx.parse_sql_expr(&text, &df_schema).map_err(bad)?;
            let physical = ctx.create_physical_expr(expr, &df_schema).map_err(bad)?;
            outputs.push((name, physical));
        }
        let compiled = Arc::new(Compiled {
            body: odfv.udf_body.clone(),
            schema: inputs.schema(),
            outputs,
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(odfv.name.clone(), Arc::clone(&compiled));
        }
        Ok(compiled)
    }

    /// Evaluates the view's expressions on `inputs`.
    pub fn run(&self, odfv: &OnDemandFeatureView, inputs: &RecordBatch) -> Result<RecordBatch> {
        let compiled = self.compiled(odfv, inputs)?;
        let n = inputs.num_rows();
        let schema = output_schema(odfv);
        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let (_, expr) = compiled
                .outputs
                .iter()
                .find(|(n, _)| n == field.name())
                .ok_or_else(|| Error::Internal(format!("no expression for {}", field.name())))?;
            let value = expr.evaluate(inputs)?.into_array(n)?;
            columns.push(conform(odfv, field.name(), value)?);
        }
        RecordBatch::try_new(schema, columns).map_err(|e| Error::Internal(e.to_string()))
    }
}
