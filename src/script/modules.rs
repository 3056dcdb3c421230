//! `import "name" as m;`: a module next to the script wins, then p2plab's stdlib, which is
//! compiled into the binary so an installed p2plab works from any folder. Each module is
//! evaluated once per run; its source name is the path users see in errors.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use rhai::module_resolvers::ModuleResolver;
use rhai::{Engine, EvalAltResult, Module, Position, Scope, Shared};

type SharedModule = Shared<Module>;

/// Modules shipped in `stdlib/`.
pub const STDLIB: &[(&str, &str)] = &[
    ("churn", include_str!("../../stdlib/churn.rhai")),
    ("topology", include_str!("../../stdlib/topology.rhai")),
    ("conditions", include_str!("../../stdlib/conditions.rhai")),
];

pub struct LabModules {
    script: PathBuf,
    script_dir: PathBuf,
    loaded: Mutex<HashMap<String, SharedModule>>,
    /// Modules being evaluated, to report an import cycle instead of overflowing the stack.
    loading: Mutex<Vec<String>>,
}

impl LabModules {
    pub fn new(script: PathBuf, script_dir: PathBuf) -> Self {
        LabModules {
            script,
            script_dir,
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(Vec::new()),
        }
    }

    /// The module's text and the name its errors carry.
    fn find(&self, name: &str, pos: Position) -> Result<(String, String), Box<EvalAltResult>> {
        let local = self.script_dir.join(format!("{name}.rhai"));
        // `scripts/churn.rhai` importing "churn" means the stdlib module, not itself.
        let is_script = local.canonicalize().ok() == self.script.canonicalize().ok();
        if local.is_file() && !is_script {
            let text = std::fs::read_to_string(&local).map_err(|e| {
                EvalAltResult::ErrorSystem(format!("reading {}", local.display()), e.into())
            })?;
            return Ok((text, local.display().to_string()));
        }
        STDLIB
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| (text.to_string(), format!("stdlib/{n}.rhai")))
            .ok_or_else(|| EvalAltResult::ErrorModuleNotFound(name.to_string(), pos).into())
    }
}

impl ModuleResolver for LabModules {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let name = path.strip_suffix(".rhai").unwrap_or(path);
        if let Some(m) = self
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(m.clone());
        }
        let (text, display) = self.find(name, pos)?;
        {
            let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
            if loading.iter().any(|n| n == name) {
                let cycle = format!("{} -> {name}", loading.join(" -> "));
                return Err(EvalAltResult::ErrorRuntime(
                    format!("import cycle: {cycle}").into(),
                    pos,
                )
                .into());
            }
            loading.push(name.to_string());
        }
        let result = self.evaluate(engine, &text, &display, pos);
        self.loading
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n != name);
        let module = result?;
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), module.clone());
        Ok(module)
    }
}

impl LabModules {
    fn evaluate(
        &self,
        engine: &Engine,
        text: &str,
        display: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        let in_module = |err: Box<EvalAltResult>| -> Box<EvalAltResult> {
            EvalAltResult::ErrorInModule(display.to_string(), err, pos).into()
        };
        let mut ast = engine.compile(text).map_err(|e| in_module(e.into()))?;
        ast.set_source(display);
        Ok(Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into())
    }
}
