"""Reserved for the sandbox SDK (`from rock.sdk.sandbox.client import Sandbox`), which is not built yet."""
