import Testing
@testable import LayerCore
