"""The user-facing SDK: `rock.sdk.sandbox` (Sandbox, SandboxConfig, SandboxGroup) and `rock.sdk.envs` (GEM)."""
