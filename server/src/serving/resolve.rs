//! Resolving feature references and feature services into the views and on-demand views that
//! serve them, in request order (shared by online and historical retrieval).

use larder_registry::{FeatureView, OnDemandFeatureView, RegistryDoc};

use super::FeatureSelection;
use crate::error::{Error, Result};

/// A requested view with the features asked of it.
pub(crate) struct ViewRequest<'a> {
    /// The view.
    pub view: &'a FeatureView,
    /// Name used in full feature names (the alias, if a service gave one).
    pub display: String,
    /// Requested features, in request order.
    pub features: Vec<String>,
}

/// Refuses two views contributing the same feature name unless names are qualified.
pub(crate) fn check_collisions(
    views: &[ViewRequest<'_>],
    odfvs: &[OdfvRequest<'_>],
    full_feature_names: bool,
) -> Result<()> {
    if full_feature_names {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::new();
    let names = views
        .iter()
        .flat_map(|v| v.features.iter())
        .chain(odfvs.iter().flat_map(|o| o.features.iter()));
    for f in names {
        if !seen.insert(f.as_str()) {
            return Err(Error::invalid(
                "full_feature_names",
                format!("feature name `{f}` is requested from more than one view; set full_feature_names to true"),
            ));
        }
    }
    Ok(())
}

/// Output name of a feature.
pub(crate) fn output_name(view: &ViewRequest<'_>, feature: &str, full_feature_names: bool) -> String {
    if full_feature_names {
        format!("{}__{feature}", view.display)
    } else {
        feature.to_string()
    }
}

/// Requested outputs of one on-demand view.
#[derive(Debug, Clone)]
pub(crate) struct OdfvRequest<'a> {
    /// The view.
    pub odfv: &'a OnDemandFeatureView,
    /// Name used in full feature names.
    pub display: String,
    /// Requested outputs, in request order.
    pub features: Vec<String>,
}

/// Resolves feature references or a service into views and on-demand views with their
/// features, each in request order.
pub(crate) fn resolve_with_odfvs<'a>(
    doc: &'a RegistryDoc,
    project: &str,
    sel: &FeatureSelection,
) -> Result<(Vec<ViewRequest<'a>>, Vec<OdfvRequest<'a>>)> {
    let mut out: Vec<ViewRequest<'a>> = Vec::new();
    let mut odfvs: Vec<OdfvRequest<'a>> = Vec::new();
    let push_odfv =
        |odfv: &'a OnDemandFeatureView, display: &str, feature: &str, odfvs: &mut Vec<OdfvRequest<'a>>| match odfvs
            .iter_mut()
            .find(|r| r.display == display && r.odfv.name == odfv.name)
        {
            Some(r) => {
                if !r.features.iter().any(|f| f == feature) {
                    r.features.push(feature.to_string());
                }
            }
            None => odfvs.push(OdfvRequest {
                odfv,
                display: display.to_string(),
                features: vec![feature.to_string()],
            }),
        };
    let odfv_feature_missing = |feature: &str, view: &str| Error::NotFound {
        class: "FeastObjectNotFoundException",
        message: format!("Feature {feature} does not exist in on demand feature view {view} in project {project}"),
    };
    let push = |view: &'a FeatureView, display: &str, feature: &str, out: &mut Vec<ViewRequest<'a>>| match out
        .iter_mut()
        .find(|r| r.display == display && r.view.name == view.name)
    {
        Some(r) => {
            if !r.features.iter().any(|f| f == feature) {
                r.features.push(feature.to_string());
            }
        }
        None => out.push(ViewRequest {
            view,
            display: display.to_string(),
            features: vec![feature.to_string()],
        }),
    };
    match sel {
        FeatureSelection::Refs(refs) => {
            if refs.is_empty() {
                return Err(Error::invalid("features", "no features specified for retrieval"));
            }
            for (i, r) in refs.iter().enumerate() {
                let Some((view_name, feature)) = r.split_once(':') else {
                    return Err(Error::invalid(
                        format!("features[{i}]"),
                        format!("`{r}` is not a feature reference of the form `view:feature`"),
                    ));
                };
                let view_name = view_name.split_once("@v").map(|(v, _)| v).unwrap_or(view_name);
                let view = match doc.feature_view(view_name) {
                    Some(v) => v,
                    None => match doc.on_demand_feature_view(view_name) {
                        Some(o) => {
                            if o.feature(feature).is_none() {
                                return Err(odfv_feature_missing(feature, view_name));
                            }
                            push_odfv(o, view_name, feature, &mut odfvs);
                            continue;
                        }
                        None => return Err(Error::view_not_found(view_name, project)),
                    },
                };
                if view.feature(feature).is_none() {
                    return Err(Error::NotFound {
                        class: "FeastObjectNotFoundException",
                        message: format!(
                            "Feature {feature} does not exist in feature view {view_name} in project {project}"
                        ),
                    });
                }
                push(view, view_name, feature, &mut out);
            }
        }
        FeatureSelection::Service(name) => {
            let service = doc
                .feature_service(name)
                .ok_or_else(|| Error::service_not_found(name, project))?;
            for p in &service.features {
                let display = p.alias.as_deref().unwrap_or(&p.view);
                let view = match doc.feature_view(&p.view) {
                    Some(v) => v,
                    None => match doc.on_demand_feature_view(&p.view) {
                        Some(o) => {
                            let names: Vec<&str> = if p.features.is_empty() {
                                o.features.iter().map(|f| f.name.as_str()).collect()
                            } else {
                                p.features.iter().map(String::as_str).collect()
                            };
                            for f in names {
                                if o.feature(f).is_none() {
                                    return Err(odfv_feature_missing(f, &p.view));
                                }
                                push_odfv(o, display, f, &mut odfvs);
                            }
                            continue;
                        }
                        None => return Err(Error::view_not_found(&p.view, project)),
                    },
                };
                if p.features.is_empty() {
                    for f in &view.features {
                        push(view, display, &f.name, &mut out);
                    }
                } else {
                    for f in &p.features {
                        push(view, display, f, &mut out);
                    }
                }
            }
        }
    }
    Ok((out, odfvs))
}
