//! The gRPC services a runtime mounts, collected with their names, so gRPC
//! health and reflection advertise exactly what is served.

use layotto_grpc::FILE_DESCRIPTOR_SET;

/// The gRPC services to mount, and their names for health and reflection.
#[derive(Default)]
pub(crate) struct Services {
    routes: tonic::service::RoutesBuilder,
    pub(crate) names: Vec<&'static str>,
}

impl Services {
    pub(crate) fn add<S>(&mut self, service: S)
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes.add_service(service);
    }

    /// Adds reflection (v1 and v1alpha) advertising exactly what is mounted.
    pub(crate) fn finish(mut self) -> Result<tonic::service::Routes, String> {
        let reflection = |reflection_service: &'static str| {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            for name in &self.names {
                builder = builder.with_service_name(*name);
            }
            builder.with_service_name(reflection_service)
        };
        let v1 = reflection("grpc.reflection.v1.ServerReflection")
            .build_v1()
            .map_err(|e| format!("gRPC reflection: {e}"))?;
        let v1alpha = reflection("grpc.reflection.v1alpha.ServerReflection")
            .build_v1alpha()
            .map_err(|e| format!("gRPC reflection: {e}"))?;
        self.routes.add_service(v1);
        self.routes.add_service(v1alpha);
        Ok(self.routes.routes())
    }
}

/// Whether `path` (`/package.Service/Method`) names a method of our protos.
pub(crate) fn serves(path: &str) -> bool {
    use prost::Message;
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return false;
    };
    let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else {
        return false;
    };
    set.file.iter().any(|file| {
        let package = file.package();
        file.service.iter().any(|s| {
            let full =
                if package.is_empty() { s.name().to_owned() } else { format!("{package}.{}", s.name()) };
            full == service && s.method.iter().any(|m| m.name() == method)
        })
    })
}
