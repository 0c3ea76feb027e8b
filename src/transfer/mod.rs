pub mod integrity;
