from .official import (convert_official_state_dict, detect_variant,
                       load_official_checkpoint)

__all__ = [
    'convert_official_state_dict', 'detect_variant', 'load_official_checkpoint'
]
