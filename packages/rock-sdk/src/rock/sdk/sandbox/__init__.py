"""The sandbox SDK: `from rock.sdk.sandbox.client import Sandbox, SandboxGroup`,
`from rock.sdk.sandbox.config import SandboxConfig`, `from rock.sdk.sandbox.request import ...`."""
