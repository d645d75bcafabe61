import LayerCore
